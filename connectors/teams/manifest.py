"""Teams' config model and spec; imports pydantic and the kit only."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pyclaw_app.channels import (
    Capabilities,
    Category,
    ChannelConfig,
    ConnectorSpec,
    Limits,
    Transport,
    secret_field,
    utf16_len,
)

__all__ = ["DEFAULT_SERVICE_HOSTS", "MAX_TEXT", "SPEC", "TEXT_CEILING", "TeamsConfig"]

MAX_TEXT = 4000
"""Default longest reply part, in UTF-16 code units."""
TEXT_CEILING = 18000
"""The longest part a setting may ask for. Teams limits a whole message activity, UTF-16
encoded, to 40 KB in its older documentation (100 KB in its newer) and refuses a larger one
with 413 MessageSizeTooBig; 18,000 code units (36 KB) stay under the stricter figure with
room for the activity around the text."""
DEFAULT_SERVICE_HOSTS = ("smba.trafficmanager.net", "*.botframework.com")
"""Where Microsoft's public cloud tells a bot to send its replies (an activity's serviceUrl)."""


class TeamsConfig(ChannelConfig):
    app_id: str = Field("", description="The bot's Microsoft App ID: the application (client) "
                        "ID of its Entra app registration, shown on the Azure Bot resource's "
                        "Configuration page (or the Teams Developer Portal's Bot management).")
    app_password: SecretStr | None = secret_field(
        "A client secret of that app registration (Certificates & secrets > New client "
        "secret; copy its Value, not its ID). Used only to get tokens from Microsoft Entra "
        "ID.", required=True)
    tenant_id: str = Field("", description="Directory (tenant) ID for a single-tenant bot "
                           "(the Azure Bot's 'Type of App'). Empty for a multi-tenant bot, "
                           "whose tokens come from the botframework.com tenant.")
    token_url: str = Field(
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        description="Microsoft Entra ID token endpoint; {tenant} becomes tenant_id or "
        "botframework.com. Change only for a sovereign cloud (login.microsoftonline.us...).")
    openid_metadata_url: str = Field(
        "https://login.botframework.com/v1/.well-known/openidconfiguration",
        description="The Bot Framework's OpenID metadata: where the keys that sign every "
        "request Teams makes to this channel are published, and which issuer signs them. "
        "Change only for a sovereign cloud (login.botframework.azure.us for US Government).")
    service_url_hosts: list[str] = Field(
        list(DEFAULT_SERVICE_HOSTS),
        description="Hosts replies may be sent to (*.example.com matches its subdomains). "
        "Each request from Teams names the address to answer at (its serviceUrl); the bot's "
        "access token goes there only when the request's signed token vouches for that "
        "address and its host is in this list, so a forged or unexpected address never "
        "receives the token. Add smba.infra.gcc.teams.microsoft.com (GCC) or "
        "smba.infra.gov.teams.microsoft.us (GCC High) for those clouds. HTTPS is required, "
        "except for a loopback test server.")
    max_text: int = Field(MAX_TEXT, ge=100, le=TEXT_CEILING,
                          description="Longest reply part, in UTF-16 code units; longer "
                          f"replies are split. Teams refuses messages over about 40 KB, so "
                          f"at most {TEXT_CEILING}.")

    def needs_webhook(self) -> bool:
        return True  # Teams only pushes: the messaging endpoint is /webhook/<channel name>


SPEC = ConnectorSpec(
    name="teams",
    title="Microsoft Teams",
    config_model=TeamsConfig,
    runtime="connectors.teams.runtime:TeamsConnector",
    icon="groups",
    category=Category.TEAM_CHAT,
    brand_icon="teams",
    brand_color="#5B5FC7",
    docs_url="https://learn.microsoft.com/en-us/azure/bot-service/"
    "bot-service-quickstart-registration",
    description="A Teams bot (Azure Bot / Bot Framework) that answers personal chats and, in "
    "group chats and channels, mentions and replies in its threads (group_reply). Needs a "
    "public HTTPS messaging endpoint.",
    transport=Transport.WEBHOOK,
    capabilities=Capabilities(edit=True, typing=True, threads=True, attachments=True),
    limits=Limits(max_text=MAX_TEXT, text_length=utf16_len),
    requires=("jwt", "cryptography", "microsoft_agents"),
    install="pip install 'pyclaw[teams]'",
)
