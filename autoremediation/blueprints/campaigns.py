"""POST /api/campaigns and GET /api/campaigns/{id}: one remediation over many VMs, in waves.

The campaign logic lives in ``autoremediation.campaigns`` (imported on first use, to keep cold starts
cheap); these functions authorise the caller (App Service authentication and app roles, see ``auth``),
read the request and hand it over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from ..errors import InvalidInput, NotFound
from .admission import AppFault, app_work, engine
from .auth import Caller, Need, authorize
from .responses import json_response, read_json, response_for

bp = func.Blueprint()


def _service(name: str) -> Callable[..., Any]:
    from .. import campaigns

    function: Callable[..., Any] = getattr(campaigns, name)
    return function


def _handle(
    req: func.HttpRequest, need: Need, action: Callable[[Caller], func.HttpResponse]
) -> func.HttpResponse:
    try:
        return action(authorize(req.headers, need, engine().settings))
    except AppFault as fault:
        return response_for(fault.error, caller_fault=False)
    except Exception as error:
        return response_for(error)


@bp.function_name("campaigns_create")
@bp.route(route="campaigns", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def campaigns_create(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        start = _service("start_campaign")
        payload = read_json(req)
        if not isinstance(payload, Mapping):
            raise InvalidInput("a campaign request must be a JSON object")
        # The campaign service refuses bad input (InvalidInput) before it writes anything: a 400.
        campaign = start(
            engine("store", "queue", "catalog"), dict(payload), actor=caller.object_id, actor_name=caller.name
        )
        campaign_id = str(campaign.get("id", ""))
        return json_response(202, campaign, {"Location": f"/api/campaigns/{campaign_id}"})

    return _handle(req, "operate", act)


@bp.function_name("campaigns_get")
@bp.route(route="campaigns/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def campaigns_get(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        from ..store.records import is_valid_id

        status = _service("campaign_status")
        campaign_id = req.route_params.get("id", "")
        if not is_valid_id(campaign_id):
            raise NotFound(f"no campaign {campaign_id[:80]!r}")
        with app_work():
            campaign = status(engine("store"), campaign_id)
        return json_response(200, campaign)

    return _handle(req, "read", act)
