"""Log and journal exports: JSONL for tools, CSV for spreadsheets. Already-redacted rows only."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["export_rows"]


def export_rows(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    if fmt == "csv":
        rows = list(rows)
        out = io.StringIO()
        fields = list(rows[0]) if rows else ["id", "ts", "channel", "level", "message", "data"]
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list)
                             else v for k, v in row.items()})
        return out.getvalue()
    raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
