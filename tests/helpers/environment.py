"""The process environment the HTTP stack reads (proxies, CA bundles), cleared for a test, and a proxy
address that refuses every connection."""

from __future__ import annotations

import os
import socket

import pytest

HTTP_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def clear_http_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no CA bundle from the environment, in either case (and no FTP_PROXY and the like:
    requests reads every ``*_proxy``)."""
    for name in HTTP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    """A local port nothing listens on: a proxy there refuses every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
