"""Webhook channels from ``REMEDIATION_NOTIFY_URLS``: the format is chosen from the URL's host, or named.

An entry is ``[format:]URL``; ``format`` is ``teams``, ``slack`` or ``json``. Without it, the host decides:
Teams Workflows (Power Automate / Logic Apps hosts, and the retired Office 365 connector host, which took
the same Adaptive Card attachment), Slack incoming webhooks, else generic JSON.

Webhook URLs carry their credential in the path or query: they are secrets. Only ``shown`` (scheme and
host) ever appears in a log line, an error message or a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import InvalidInput

FORMATS = ("teams", "slack", "json")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TEAMS_HOSTS = (
    ".logic.azure.com",
    ".powerautomate.com",
    ".powerplatform.com",
    "flow.microsoft.com",
    ".webhook.office.com",
)
_SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


@dataclass(frozen=True)
class Channel:
    format: str
    url: str = field(repr=False)

    @property
    def shown(self) -> str:
        """The channel as it may be logged: format, scheme and host, never the path that holds the token."""
        parts = urlsplit(self.url)
        return f"{self.format}:{parts.scheme}://{parts.hostname}/…"

    def __str__(self) -> str:
        return self.shown


def _format_for_host(host: str) -> str:
    if any(host == h or host.endswith("." + h) for h in _SLACK_HOSTS):
        return "slack"
    if any(host.endswith(suffix) or host == suffix.lstrip(".") for suffix in _TEAMS_HOSTS):
        return "teams"
    return "json"


def parse_channel(entry: str, position: int, setting: str = "REMEDIATION_NOTIFY_URLS") -> Channel:
    """One entry of the setting; InvalidInput names the entry by position, never by its text."""
    text = entry.strip()
    named, sep, rest = text.partition(":")
    explicit = named.lower() if sep and named.lower() in FORMATS else None
    url = rest.strip() if explicit else text
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    where = f"{setting}: entry {position}"
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput(f"{where} is not an http(s) URL (prefix a format as teams:, slack: or json:)")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise InvalidInput(f"{where} uses plain http: a webhook URL carries a secret, use https")
    return Channel(explicit or _format_for_host(host), url)


def parse_channels(entries: tuple[str, ...]) -> tuple[Channel, ...]:
    return tuple(parse_channel(entry, index) for index, entry in enumerate(entries, start=1))
