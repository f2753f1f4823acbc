"""GET /api/openapi: the operator API's OpenAPI document, as JSON. Anonymous: it describes, it grants nothing.

The document is ``autoremediation/openapi.yaml``, shipped inside the package; it is read once per
process. When the app knows the Entra scope of its operator API (``REMEDIATION_APP_SCOPE``), the
document names it, so a client can ask for the right token.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import azure.functions as func

bp = func.Blueprint()
DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.yaml"
_lock = threading.Lock()
_cached: dict[str, Any] | None = None


def document() -> dict[str, Any]:
    """The parsed document (a fresh copy: callers may change it)."""
    global _cached
    with _lock:
        if _cached is None:
            import yaml

            _cached = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
        return json.loads(json.dumps(_cached))


@bp.function_name("openapi")
@bp.route(route="openapi", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from ..errors import RemediationError
    from .responses import error_response, json_response
    from .runtime import services

    data = document()
    try:
        scope = services().settings.app_scope
    except RemediationError as error:
        return error_response(503, f"the app cannot serve this request: {error}")
    if scope:
        data.setdefault("info", {})["x-entra-scope"] = scope
    return json_response(200, data)
