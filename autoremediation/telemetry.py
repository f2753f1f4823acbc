"""Outcome telemetry: one Application Insights custom event per job transition, plus two metrics.

Each transition is logged on ``autoremediation.outcome`` with the attribute
``microsoft.custom_event.name``: the azure-monitor-opentelemetry log exporter sends a record that carries
it as an ``EventData`` envelope (table ``customEvents``) named by it, and every other attribute of the
record becomes a column of ``customDimensions``. The attributes are flat strings and numbers, so a query
reads ``customDimensions.jobId`` directly (a nested dict would arrive as one Python repr).

Metrics (OpenTelemetry, table ``customMetrics``): ``remediation.jobs`` counts ended jobs by remediation
and outcome; ``remediation.run.duration`` records how long the run command ran, in seconds.

The exporter is configured only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, and only on first
use: importing ``azure.monitor.opentelemetry`` costs about half a second, which a cold start must not pay
before it has work. Without it the events are plain log lines and the metrics go to the no-op provider.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from .jobs import TERMINAL, Job, Transition
from .resources import VmRef
from .settings import Settings

EVENT_NAME = "RemediationTransition"
CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"  # read by the Azure Monitor log exporter
JOBS_METRIC = "remediation.jobs"
RUN_DURATION_METRIC = "remediation.run.duration"

# Every customDimensions field an event may carry (the workbook's queries may read only these).
EVENT_FIELDS = (
    "jobId",
    "remediation",
    "condition",
    "target",
    "vmName",
    "from",
    "to",
    "actor",
    "reason",
    "guard",
    "dryRun",
    "campaignId",
    "exitCode",
    "verdict",
    "runSeconds",
    "at",
)
# Guard names as policy.guard_decision gives them: a skip's reason starts with "<guard>: ".
GUARDS = frozenset(
    {
        "alert-state",
        "kill-switch",
        "scope",
        "vm-exists",
        "opt-in",
        "quarantine",
        "vm-running",
        "agent-ready",
        "os",
        "parameters",
        "cooldown",
        "circuit-breaker",
    }
)

logger = logging.getLogger("autoremediation.outcome")
_configured = False
_lock = threading.Lock()
_instruments: tuple[Any, Any] | None = None


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
                # Only notifications use urllib, and a webhook's URL is its secret: no dependency
                # telemetry may record it.
                instrumentation_options={"urllib": {"enabled": False}},
            )
            # The host's root logger may sit at WARNING: the outcome events must get through anyway.
            logger.setLevel(logging.INFO)
            _configured = True
    return True


def guard_of(transition: Transition) -> str | None:
    """The guard that skipped the job, when the transition is a guard's skip."""
    if transition.target != "skipped":
        return None
    name = transition.reason.split(":", 1)[0].strip()
    return name if name in GUARDS else None


def transition_event(job: Job, transition: Transition) -> dict[str, Any]:
    """The flat fields of one outcome event; absent values are left out (no nulls, no nesting)."""
    ref = VmRef.parse(job.target)
    event: dict[str, Any] = {
        "jobId": job.id,
        "remediation": job.remediation,
        "condition": job.condition,
        "target": job.target,
        "vmName": ref.name if ref else job.target.rstrip("/").rsplit("/", 1)[-1],
        "from": transition.source,
        "to": transition.target,
        "actor": transition.actor,
        "reason": transition.reason,
        "guard": guard_of(transition),
        "at": transition.at,
        # Lower-case text: customDimensions are strings, and KQL's tobool() reads "true"/"false".
        "dryRun": "true" if job.dry_run else "false",
        "campaignId": job.campaign_id,
    }
    if job.terminal and transition == job.history[-1]:
        event["exitCode"] = job.outcome.get("exitCode")
        event["verdict"] = job.outcome.get("verification")
        event["runSeconds"] = job.outcome.get("runSeconds")
    return {k: v for k, v in event.items() if v is not None and v != ""}


def emit_transition(job: Job, transition: Transition) -> None:
    """Log the transition as a custom event; count and time the job when it ended."""
    ended = transition.target in TERMINAL and transition == job.history[-1]
    logging_on = logger.isEnabledFor(logging.INFO)
    if not (logging_on or ended):
        return  # nobody listens (no exporter, root logger above INFO): skip building the event
    event = transition_event(job, transition)
    if logging_on:
        logger.info(
            json.dumps({"event": EVENT_NAME, **event}, sort_keys=True),
            extra={CUSTOM_EVENT_ATTRIBUTE: EVENT_NAME, **event},
        )
    if ended:
        _record_metrics(job, event)


def _record_metrics(job: Job, event: dict[str, Any]) -> None:
    jobs_counter, run_duration = _metric_instruments()
    labels = {"remediation": job.remediation, "outcome": job.status, "dryRun": event["dryRun"]}
    jobs_counter.add(1, labels)
    seconds = job.outcome.get("runSeconds")
    if isinstance(seconds, (int, float)) and seconds >= 0:
        run_duration.record(float(seconds), labels)


def _metric_instruments() -> tuple[Any, Any]:
    """Made once; the API's proxy meter binds them to the provider configure() installs, even later."""
    global _instruments
    if _instruments is None:
        from opentelemetry import metrics

        meter = metrics.get_meter("autoremediation")
        _instruments = (
            meter.create_counter(JOBS_METRIC, unit="{job}", description="Remediation jobs ended, by outcome"),
            meter.create_histogram(
                RUN_DURATION_METRIC, unit="s", description="How long a remediation's run command ran"
            ),
        )
    return _instruments
