"""What makes the console safe as a web page: response headers and the cross-site request check.

* **Content-Security-Policy** allows nothing but the console's own stylesheet and form posts to itself:
  no script runs at all, inline or not, and no other site may frame the page.
* **Cross-site request forgery**: the App Service authentication session cookie goes with any request
  the browser makes, including one a hostile page triggers, so it must not be enough to change a job.
  Every form carries a token that must equal a cookie the console set (the double-submit pattern): a
  hostile page can make the browser send the cookie but can neither read it nor set it (``__Host-``
  prefix, ``SameSite=Strict``). A POST is also refused when the browser says it came from another site
  (``Sec-Fetch-Site``) or another origin (``Origin``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from ..errors import RemediationError

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not ``no-referrer``: under it a browser sends ``Origin: null`` with the console's own form posts,
    # and the origin check below could not tell them from a sandboxed attacker's frame.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
# ``__Host-``: the browser keeps it only when set over HTTPS, without Domain, with Path=/ (no other
# host, not even a sibling subdomain, can plant one). Plain HTTP is only the local console on loopback.
SECURE_COOKIE = "__Host-console-csrf"
LOCAL_COOKIE = "console-csrf"
TOKEN_BYTES = 32
FORM_FIELD = "csrf"


class CrossSiteRequest(RemediationError):
    """A state-changing request without proof that the console's own page sent it (403)."""


def _is_https(url: str, headers: Mapping[str, str]) -> bool:
    forwarded = (headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    return forwarded == "https" or urlsplit(url).scheme == "https"


def cookie_name(url: str, headers: Mapping[str, str]) -> str:
    return SECURE_COOKIE if _is_https(url, headers) else LOCAL_COOKIE


def token_from_cookie(url: str, headers: Mapping[str, str]) -> str | None:
    raw = headers.get("Cookie") or ""
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(cookie_name(url, headers))
    return morsel.value if morsel is not None and morsel.value else None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def set_cookie_header(url: str, headers: Mapping[str, str], token: str) -> str:
    name = cookie_name(url, headers)
    secure = "; Secure" if name == SECURE_COOKIE else ""
    return f"{name}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"


def _origin_of(url: str, headers: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    scheme = "https" if _is_https(url, headers) else parts.scheme
    host = headers.get("X-Forwarded-Host") or headers.get("Host") or parts.netloc
    return f"{scheme}://{host.split(',')[0].strip()}".lower()


def check_same_origin(url: str, headers: Mapping[str, str], form: Mapping[str, str]) -> None:
    """Refuse a POST that another site could have made; CrossSiteRequest says why."""
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    if site and site not in {"same-origin", "none"}:
        raise CrossSiteRequest(f"refused: the request came from another site ({site})")
    origin = (headers.get("Origin") or "").strip().lower()
    if origin and origin != "null" and origin != _origin_of(url, headers):
        raise CrossSiteRequest("refused: the request came from another origin")
    if origin == "null":
        raise CrossSiteRequest("refused: the request came from an opaque origin")
    expected = token_from_cookie(url, headers)
    given = form.get(FORM_FIELD, "")
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CrossSiteRequest("refused: the form's token does not match (reload the page and try again)")
