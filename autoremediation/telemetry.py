"""Structured outcome events: one per job transition, to the log and to OpenTelemetry.

The Application Insights exporter is configured only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is
set, and only on first use: importing ``azure.monitor.opentelemetry`` costs about half a second, which a
cold start must not pay before it has work.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from .jobs import Job, Transition
from .settings import Settings

logger = logging.getLogger("autoremediation.outcome")
_configured = False
_lock = threading.Lock()


def configure(settings: Settings) -> bool:
    """Wire Azure Monitor once, if a connection string is set. Returns whether it is wired."""
    global _configured
    if not settings.appinsights_connection_string:
        return False
    with _lock:
        if not _configured:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(
                connection_string=settings.appinsights_connection_string,
                logger_name="autoremediation",
            )
            _configured = True
    return True


def transition_event(job: Job, transition: Transition) -> dict[str, Any]:
    """The fields of one outcome event: enough to chart outcomes per remediation, VM and guard."""
    event: dict[str, Any] = {
        "event": "remediation.transition",
        "jobId": job.id,
        "remediation": job.remediation,
        "condition": job.condition,
        "target": job.target,
        "from": transition.source,
        "to": transition.target,
        "actor": transition.actor,
        "reason": transition.reason,
        "at": transition.at,
        "dryRun": job.dry_run,
    }
    if job.campaign_id:
        event["campaignId"] = job.campaign_id
    if job.terminal:
        event["exitCode"] = job.outcome.get("exitCode")
        event["verdict"] = job.outcome.get("verification")
    return event


def emit_transition(job: Job, transition: Transition) -> None:
    event = transition_event(job, transition)
    logger.info(json.dumps(event, sort_keys=True), extra={"custom_dimensions": event})
    try:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "remediation.transition",
                {k: v for k, v in event.items() if isinstance(v, (str, bool, int, float))},
            )
    except ImportError:  # pragma: no cover - opentelemetry-api is a runtime dependency
        pass
