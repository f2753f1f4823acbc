"""An alert is a claim, Azure Monitor is the truth: which alerts may make jobs, and for which VMs.

Anyone who can reach the webhook, or who owns any alert rule wired to the Action Group, can send a
Common Alert Schema body naming any VM with any custom properties. So before an alert's findings may
dispatch or wait for approval, the alert is read back from Azure Monitor (``ports.Alerts``) and:

1. it must exist (Alerts Management ``alerts/{id}``);
2. its monitor condition and fired time must be what the payload says, and its alert rule the
   payload's rule;
3. its rule must be one the deployment trusts (the rules ``infra/`` deploys, plus the ids or
   resource-group-scoped globs in ``REMEDIATION_TRUSTED_ALERT_RULES``); an untrusted rule makes no job;
4. it must have fired recently (``REMEDIATION_ALERT_MAX_AGE_MINUTES``, Azure's fired time);
5. the rule's custom properties (``condition``, ``remediation``, parameters) are read from the rule
   resource in ARM, never from the body; the rule must be enabled, and the alert's target must lie
   under one of the rule's ``scopes``;
6. what is routed is Azure's record of the alert, not the body: the monitor service and signal type
   from ``essentials``, the query, metrics, dimensions and operation from ``properties.context``, the
   target from ``essentials.targetResource``. What Azure's record lacks, the alert does not have;
7. each job's VM must be the alert's target resource as Azure records it.

A signal that fails 1-5 makes no job at all (a note says why); a finding for a VM that is not the
alert's target becomes a ``provenance:`` note, never a job. One signal yields at most
``REMEDIATION_MAX_JOBS_PER_SIGNAL`` jobs: above it the whole signal is refused with the count (a
broad change on purpose goes through a campaign, which an operator starts and paces).

Reads remembered. ARM answers at most 25 reads a second per subscription and identity (a bucket of 250,
refilled at 25/s), so each process remembers two reads for a short while (``readcache``):

* an alert RULE for ``RULE_TTL`` (30 s, at most 256 rules). A rule changes rarely; each alert is still
  read fresh. What a stale rule could let through: for up to 30 s after an operator disables a rule,
  narrows its scopes or changes its custom properties in ARM, an alert that Azure Monitor itself
  confirms (fresh read: it exists, fired recently, from that trusted rule) is still routed with the
  rule as it was. Acceptable because the alert is real and from a trusted rule, Azure Monitor's own
  evaluation of a changed rule lags by minutes anyway, the trust list (app settings) is never
  remembered, a missing rule is never remembered, and the kill switch stops every run at once.
* an ALERT for ``ALERT_TTL`` (30 s, at most 4,096 alerts), for duplicate deliveries only: a Fired
  notification of an alert this process read as Fired a moment ago is judged on that read
  (``Verdict.remembered``), and intake then admits it only for jobs that exist already (returns them,
  creates and sends nothing); anything new is read from Azure again. A Resolved notification is always
  read afresh. What a stale alert could let through: nothing new; a Fired redelivery within 30 s of
  its alert resolving is answered with its existing job rather than refused, and that job is still
  cancelled by the Resolved notification.

Pure: the records come from a port, the time from a clock.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

from .errors import NotFound, RemediationError, SignalError, Throttled, Transient
from .ports import AlertRecord, AlertRuleRecord, Alerts, Clock
from .readcache import TtlCache
from .resources import VmRef, normalize, vm_ref_of
from .signals.alerts import AlertContext, read_alert_context
from .signals.model import Signal

PREFIX = "provenance:"
TRUST_SETTING = "REMEDIATION_TRUSTED_ALERT_RULES"
# A notification is sent right after the alert fires; the Action Group retries a failed webhook call up
# to 5 times over about two minutes (5 s, 20 s, 5 s, 40 s, 5 s apart, 10 s timeouts), and this app
# answers 503 while its storage or Azure Monitor is briefly away, which starts those retries again.
# 30 minutes covers all of that with room to spare, and still refuses a replayed or made-up old alert.
DEFAULT_MAX_AGE = timedelta(minutes=30)
DEFAULT_MAX_JOBS = 20
# Azure's record and the notification both carry the fired time; allow for rounding only.
FIRED_TOLERANCE = timedelta(seconds=5)
# Reads remembered by one process (see the module's docstring).
RULE_TTL = timedelta(seconds=30)
ALERT_TTL = timedelta(seconds=30)
RULES_REMEMBERED = 256
ALERTS_REMEMBERED = 4096

_RULE_GROUP = re.compile(
    r"^/subscriptions/[^/*?\[\]]+/resourceGroups/[^/*?\[\]]+/providers/.+$", re.IGNORECASE
)


class ProvenanceUnavailable(Transient):
    """Azure Monitor could not be asked (after the adapter's bounded retries): nothing may act."""


def trusted_rule_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a trusted-rule entry, or None: ids and globs stay in one resource group."""
    if not _RULE_GROUP.match(pattern.strip()):
        return (
            f"{TRUST_SETTING} entry {pattern!r} must be an alert rule resource id or a glob inside one "
            "resource group (/subscriptions/<id>/resourceGroups/<name>/providers/...)"
        )
    return None


def rule_trusted(rule_id: str, patterns: tuple[str, ...]) -> bool:
    """Whether the rule's resource id matches a trusted id or glob (ARM ids compare case-insensitively)."""
    key = normalize(rule_id)
    return any(fnmatch.fnmatchcase(key, p) for p in _usable_patterns(tuple(patterns)))


@lru_cache(maxsize=16)
def _usable_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The valid entries of a trust list, normalised (a deployment has one list: worked out once)."""
    return tuple(normalize(p) for p in patterns if trusted_rule_problem(p) is None)


def how_to_trust(rule_id: str) -> str:
    return (
        f"alert rule {rule_id} is not trusted: no job. To let it start remediations, add its resource "
        f"id (or a glob over its resource group) to {TRUST_SETTING}"
    )


_ISO_TIME = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from a payload (``Z``, 7 fractional digits); None when absent or unreadable."""
    if not text:
        return None
    value = text.strip()
    match = _ISO_TIME.match(value)
    if not match:
        return None
    fraction = (match[2] or "")[:7]  # Azure writes 7 fractional digits: keep the dot and microseconds
    zone = match[3] or "Z"
    try:
        parsed = datetime.fromisoformat(match[1] + fraction + ("+00:00" if zone.upper() == "Z" else zone))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@dataclass(frozen=True)
class ProvenanceSettings:
    trusted_rules: tuple[str, ...] = ()
    max_age: timedelta = DEFAULT_MAX_AGE
    max_jobs: int = DEFAULT_MAX_JOBS
    # How long this process serves an alert rule it read (see "Reads remembered" above); 0: never.
    rule_ttl: timedelta = RULE_TTL
    # How long an alert read stays in memory for a duplicate delivery with the same monitor condition.
    alert_ttl: timedelta = ALERT_TTL


@dataclass(frozen=True)
class Verdict:
    """What the gate made of one signal: the signal to route (custom properties from the rule, for a
    confirmed alert), Azure's record of it, and ``refusal`` when the signal may make no job.

    ``remembered``: the alert record was this process's read of the same alert with the same monitor
    condition less than ``alert_ttl`` ago, not a fresh one. Intake admits such a verdict only for jobs
    that exist already (a duplicate delivery) and reads Azure again for anything new.
    """

    signal: Signal
    record: AlertRecord | None = None
    refusal: str | None = None
    notes: tuple[str, ...] = ()
    remembered: bool = False


def _rule_name(rule_id: str) -> str:
    return rule_id.rstrip("/").rsplit("/", 1)[-1]


def check_record(signal: Signal, record: AlertRecord, now: datetime, max_age: timedelta) -> str | None:
    """Why Azure's record does not confirm the payload (a ``provenance:`` reason), or None."""
    said = (signal.state or "").lower()
    if record.monitor_condition.strip().lower() != said:
        return (
            f"{PREFIX} Azure Monitor records alert {signal.id} as {record.monitor_condition or 'unknown'}, "
            f"the payload says {signal.state}"
        )
    claimed = parse_time(signal.fired_at)
    if claimed is None or record.fired_at is None:
        return f"{PREFIX} alert {signal.id}: no fired time to compare (payload {signal.fired_at!r})"
    if abs(claimed - record.fired_at) > FIRED_TOLERANCE:
        return (
            f"{PREFIX} alert {signal.id} fired at {record.fired_at.isoformat()} according to Azure Monitor, "
            f"the payload says {signal.fired_at}"
        )
    claimed_rule_id = str(signal.extra.get("alertRuleId") or "")
    if claimed_rule_id and normalize(claimed_rule_id) != normalize(record.rule_id):
        return (
            f"{PREFIX} alert {signal.id} comes from rule {record.rule_id}, "
            f"the payload names {claimed_rule_id}"
        )
    if (signal.rule or "").strip().lower() != _rule_name(record.rule_id).lower():
        return (
            f"{PREFIX} alert {signal.id} comes from rule {record.rule_id}, the payload names {signal.rule!r}"
        )
    if said == "fired" and now - record.fired_at > max_age:
        minutes = int((now - record.fired_at).total_seconds() // 60)
        return (
            f"{PREFIX} alert {signal.id} fired at {record.fired_at.isoformat()}, {minutes} min ago: alerts "
            f"older than {int(max_age.total_seconds() // 60)} min "
            "(REMEDIATION_ALERT_MAX_AGE_MINUTES) are refused"
        )
    return None


def target_refusal(target: VmRef, record: AlertRecord | None) -> str | None:
    """Why a job may not act on ``target`` for this confirmed alert, or None."""
    if record is None:
        return None
    recorded = vm_ref_of(record.target_resource)
    if recorded is not None and recorded == target:
        return None
    return (
        f"{PREFIX} {target.id} is not the target of alert {record.id}; Azure Monitor records "
        f"{record.target_resource or 'no target'}"
    )


# Alerts Management names the activity log services "ActivityLog Administrative"; the Common Alert
# Schema (and so routes.yaml) says "Activity Log - Administrative".
_ACTIVITY_LOG_SERVICE = re.compile(r"^ActivityLog\s+(?P<category>\w+)$", re.IGNORECASE)
_WORKSPACE_TYPES = ("microsoft.operationalinsights/workspaces", "microsoft.insights/components")


def service_name(monitor_service: str) -> str:
    """Alerts Management's ``monitorService`` in the Common Alert Schema's ``monitoringService`` spelling."""
    match = _ACTIVITY_LOG_SERVICE.match(monitor_service.strip())
    return f"Activity Log - {match['category']}" if match else monitor_service.strip()


def under(resource_id: str, scope: str) -> bool:
    """Whether ``resource_id`` is ``scope`` or lies below it (ARM ids, case-insensitive)."""
    resource, container = normalize(resource_id), normalize(scope)
    return bool(container) and (resource == container or resource.startswith(container + "/"))


def _scope_holds(scope: str, target: str) -> bool:
    # A log search rule scoped to a workspace (or Application Insights) reports the VM that sent the
    # rows (``resourceIdColumn``): the VM is not below the workspace by id. Such a scope holds the
    # VMs of the workspace's own subscription only.
    if any(f"/providers/{kind}/" in normalize(scope) + "/" for kind in _WORKSPACE_TYPES):
        return under(target, "/".join(normalize(scope).split("/")[:3]))
    return under(target, scope)


def rule_refusal(record: AlertRecord, rule: AlertRuleRecord) -> str | None:
    """Why a trusted rule's alert may still not act: the rule is disabled, or the alert's target lies
    outside the rule's scopes (a rule trusted by a glob must not reach any VM)."""
    if not rule.enabled:
        return f"{PREFIX} alert rule {record.rule_id} is disabled in ARM: its alerts start nothing"
    if not any(_scope_holds(scope, record.target_resource) for scope in rule.scopes):
        return (
            f"{PREFIX} alert {record.id} targets {record.target_resource or 'no resource'}, which is not "
            f"under the scopes of rule {record.rule_id} ({', '.join(rule.scopes) or 'none recorded'})"
        )
    return None


_BODY_EXTRA = ("alertRuleId", "originAlertId")


def recorded_signal(
    signal: Signal, record: AlertRecord, rule: AlertRuleRecord
) -> tuple[Signal, tuple[str, ...]]:
    """The signal to route, built from Azure's record of the alert and its rule, never from the body.

    The body keeps only what identifies it (state, times); the monitor service, signal type, query,
    metrics, dimensions, operation and targets are Azure's. Returns notes saying what Azure lacked.
    """
    target = record.target_resource
    notes: list[str] = []
    try:
        recorded = read_alert_context(record.context)
    except SignalError as error:
        notes.append(
            f"{PREFIX} Azure Monitor's context of alert {record.id} cannot be read ({error}): "
            "routed on its essentials only"
        )
        recorded = AlertContext()
    if not record.context:
        notes.append(
            f"{PREFIX} Azure Monitor records no alert context for {record.id}: routes that need a query, "
            "metric, dimension or operation do not match"
        )
    vm = vm_ref_of(target)
    others = [t.id for t in signal.targets if vm is None or t != vm]
    if others:
        notes.append(
            f"{PREFIX} the payload names {len(others)} VM(s) that are not the target of alert {record.id} "
            f"(Azure Monitor records {target or 'no target'}): ignored, e.g. {others[0]}"
        )
    # What the alert context says (the write's correlation id, caller, condition type, queries) is
    # Azure's; the body keeps only what identifies it (its rule id, compared above).
    extra = {k: v for k, v in signal.extra.items() if k in _BODY_EXTRA}
    extra.update(recorded.extra)
    # A detector starts from the resource Azure recorded as the alert's target (an activity-log
    # alert's NSG), never from one the body names.
    confirmed = replace(
        signal,
        id=record.id or signal.id,
        type=service_name(record.monitor_service) or "unknown",
        signal_type=(record.signal_type or "").strip() or None,
        targets=(vm,) if vm is not None else (),
        resources=(target,) if target else (),
        operation_name=recorded.operation,
        resource_id=target if recorded.operation else None,
        status=recorded.status,
        query=recorded.query,
        metrics=recorded.metrics,
        dimensions=recorded.dimensions,
        custom_properties=dict(rule.custom_properties),
        extra=extra,
    )
    return confirmed, tuple(notes)


def fan_out_refusal(count: int, limit: int) -> str | None:
    if count <= limit:
        return None
    return (
        f"this signal asks for {count} jobs, more than REMEDIATION_MAX_JOBS_PER_SIGNAL={limit}: refused, "
        "no job made (start a campaign to remediate many VMs on purpose)"
    )


class AlertGate:
    """Confirms alert signals with Azure Monitor; other signals pass through unchanged."""

    def __init__(self, alerts: Alerts | None, settings: ProvenanceSettings, clock: Clock) -> None:
        self.alerts = alerts
        self.settings = settings
        self.clock = clock
        self._rules: TtlCache[AlertRuleRecord] = TtlCache(clock, settings.rule_ttl, RULES_REMEMBERED)
        self._alerts: TtlCache[AlertRecord] = TtlCache(clock, settings.alert_ttl, ALERTS_REMEMBERED)

    def verdict(self, signal: Signal, *, fresh: bool = False) -> Verdict:
        """Raises ProvenanceUnavailable when Azure Monitor cannot be reached: fail closed, retry later.

        ``fresh``: read the alert from Azure Monitor even when this process read it a moment ago.
        """
        if signal.source != "alert":
            return Verdict(signal)
        if self.alerts is None:
            return Verdict(
                signal, refusal=f"{PREFIX} no Azure Monitor connection to confirm alert {signal.id}"
            )
        remembered = None if fresh else self._remembered(signal)
        if remembered is not None:
            return replace(self._judge(signal, remembered), remembered=True)
        try:
            record = self.alerts.get_alert(signal.id)
        except NotFound:
            return Verdict(signal, refusal=f"{PREFIX} Azure Monitor has no alert {signal.id}")
        except (Transient, Throttled) as error:
            raise ProvenanceUnavailable(
                f"{PREFIX} Azure Monitor could not confirm alert {signal.id}: {error}"
            ) from error
        except RemediationError as error:
            return Verdict(signal, refusal=f"{PREFIX} alert {signal.id} could not be read: {error}")
        self._alerts.put(normalize(signal.id), record)
        return self._judge(signal, record)

    def _remembered(self, signal: Signal) -> AlertRecord | None:
        """This process's recent read of the alert, when it records the condition the body claims.

        A Resolved notification is always read afresh: it cancels jobs, and a remembered Fired record
        would refuse it.
        """
        if signal.state != "fired":
            return None
        record = self._alerts.get(normalize(signal.id))
        if record is None or record.monitor_condition.strip().lower() != "fired":
            return None
        return record

    def _rule(self, rule_id: str) -> AlertRuleRecord:
        """The alert rule, from ARM or from this process's read of it less than ``rule_ttl`` ago."""
        key = normalize(rule_id)
        rule = self._rules.get(key)
        if rule is None:
            assert self.alerts is not None  # checked by verdict
            rule = self.alerts.get_rule(rule_id)  # a missing rule is never remembered: read again
            self._rules.put(key, rule)
        return rule

    def _judge(self, signal: Signal, record: AlertRecord) -> Verdict:
        refusal = check_record(signal, record, self.clock.now(), self.settings.max_age)
        if refusal is not None:
            return Verdict(signal, record, refusal)
        if not rule_trusted(record.rule_id, self.settings.trusted_rules):
            return Verdict(signal, record, how_to_trust(record.rule_id))
        try:
            rule = self._rule(record.rule_id)
        except NotFound:
            return Verdict(signal, record, f"{PREFIX} alert rule {record.rule_id} does not exist in ARM")
        except (Transient, Throttled) as error:
            raise ProvenanceUnavailable(
                f"{PREFIX} could not read alert rule {record.rule_id}: {error}"
            ) from error
        except RemediationError as error:
            return Verdict(signal, record, f"{PREFIX} alert rule {record.rule_id} could not be read: {error}")
        refusal = rule_refusal(record, rule)
        if refusal is not None:
            return Verdict(signal, record, refusal)
        confirmed, notes = recorded_signal(signal, record, rule)
        return Verdict(confirmed, record, notes=notes)
