"""POST /api/alerts: the Action Group webhook for Common Alert Schema alerts.

202 with the job ids (also for a duplicate delivery: the same jobs, ``created: false``); 400 with the
reason for anything that is not a usable alert; 413 over 1 MB; 503 with Retry-After when storage or
ARM is briefly unavailable, which makes the Action Group retry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import azure.functions as func

from ..errors import SignalError
from .admission import AppFault, admit, engine, plan, result_body
from .responses import json_response, read_json, response_for

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.alerts")
ACTOR = "action-group"


@bp.function_name("alerts")
@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def alerts(req: func.HttpRequest) -> func.HttpResponse:
    from ..signals.alerts import is_alert, parse_alert
    from .webhook_auth import check_alert_caller

    try:
        settings = engine().settings
        authenticated = check_alert_caller(
            req.headers, platform_auth=settings.platform_auth, tenant_id=settings.tenant_id
        )
        payload = read_json(req)
        if not isinstance(payload, Mapping) or not is_alert(payload):
            # Events and manual requests have their own entry points, with their own authorisation.
            raise SignalError(
                "not a Common Alert Schema alert (no schemaId): enable the common alert schema on the "
                "action group's webhook action"
            )
        signal = parse_alert(payload)
        report = plan([signal], strict_parameters=False)
        result = admit(report, actor=ACTOR)
    except AppFault as fault:
        return response_for(fault.error, caller_fault=False)
    except Exception as error:
        return response_for(error)
    body = result_body(result)
    log.info("alert %s (%s): jobs %s", signal.id, authenticated, body["jobIds"])
    return json_response(202, body)
