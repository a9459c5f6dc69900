"""Reply text -> Telegram HTML (parse_mode="HTML").

LLM replies are markdown-ish; Telegram renders a small HTML subset. We turn the
three constructs that matter most in chat (``**bold**``, ```` `code` ````,
```` ```fenced blocks``` ````) into tags and escape everything else, so a stray
``<`` or ``&`` in a reply can never make Telegram reject the message. A
construct cut in half by message splitting is left as literal text.
"""

from __future__ import annotations

import html
import re

__all__ = ["to_html"]

_TOKEN = re.compile(
    r"```(?P<lang>[\w+#.-]*)\n?(?P<pre>.*?)```"  # fenced block, optional language
    r"|`(?P<code>[^`\n]+)`"  # inline code
    r"|\*\*(?P<bold>\S(?:[^\n]*?\S)?)\*\*",  # bold on one line, no padding spaces
    re.DOTALL,
)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def to_html(text: str) -> str:
    """HTML for ``text`` whose visible text equals ``text`` minus the markdown markers."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(_escape(text[pos : match.start()]))
        pos = match.end()
        if match.group("pre") is not None:
            lang, body = match.group("lang"), _escape(match.group("pre"))
            if lang:
                out.append(f'<pre><code class="language-{_escape(lang)}">{body}</code></pre>')
            else:
                out.append(f"<pre>{body}</pre>")
        elif match.group("code") is not None:
            out.append(f"<code>{_escape(match.group('code'))}</code>")
        else:
            out.append(f"<b>{_escape(match.group('bold'))}</b>")
    out.append(_escape(text[pos:]))
    return "".join(out)
