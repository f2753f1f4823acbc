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
   resource in ARM, never from the body;
6. each job's VM must be the alert's target resource as Azure records it.

A signal that fails 1-4 makes no job at all (a note says why); a finding for a VM that is not the
alert's target is skipped with a ``provenance:`` reason. One signal yields at most
``REMEDIATION_MAX_JOBS_PER_SIGNAL`` jobs: above it the whole signal is refused with the count (a
broad change on purpose goes through a campaign, which an operator starts and paces).

Pure: the records come from a port, the time from a clock.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .errors import NotFound, RemediationError, Throttled, Transient
from .ports import AlertRecord, Alerts, Clock
from .resources import VmRef, normalize, vm_ref_of
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
    return any(fnmatch.fnmatchcase(key, normalize(p)) for p in patterns if trusted_rule_problem(p) is None)


def how_to_trust(rule_id: str) -> str:
    return (
        f"alert rule {rule_id} is not trusted: no job. To let it start remediations, add its resource "
        f"id (or a glob over its resource group) to {TRUST_SETTING}"
    )


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from a payload (``Z``, 7 fractional digits); None when absent or unreadable."""
    if not text:
        return None
    value = text.strip()
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", value, re.IGNORECASE)
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


@dataclass(frozen=True)
class Verdict:
    """What the gate made of one signal: the signal to route (custom properties from the rule, for a
    confirmed alert), Azure's record of it, and ``refusal`` when the signal may make no job."""

    signal: Signal
    record: AlertRecord | None = None
    refusal: str | None = None


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

    def verdict(self, signal: Signal) -> Verdict:
        """Raises ProvenanceUnavailable when Azure Monitor cannot be reached: fail closed, retry later."""
        if signal.source != "alert":
            return Verdict(signal)
        if self.alerts is None:
            return Verdict(
                signal, refusal=f"{PREFIX} no Azure Monitor connection to confirm alert {signal.id}"
            )
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
        refusal = check_record(signal, record, self.clock.now(), self.settings.max_age)
        if refusal is not None:
            return Verdict(signal, record, refusal)
        if not rule_trusted(record.rule_id, self.settings.trusted_rules):
            return Verdict(signal, record, how_to_trust(record.rule_id))
        try:
            rule = self.alerts.get_rule(record.rule_id)
        except NotFound:
            return Verdict(signal, record, f"{PREFIX} alert rule {record.rule_id} does not exist in ARM")
        except (Transient, Throttled) as error:
            raise ProvenanceUnavailable(
                f"{PREFIX} could not read alert rule {record.rule_id}: {error}"
            ) from error
        except RemediationError as error:
            return Verdict(signal, record, f"{PREFIX} alert rule {record.rule_id} could not be read: {error}")
        # Custom properties come from the rule resource; a detector starts from the resource Azure
        # recorded as the alert's target (an activity-log alert's NSG), never from one the body names.
        confirmed = replace(
            signal,
            custom_properties=dict(rule.custom_properties),
            resource_id=record.target_resource if signal.resource_id else None,
            resources=(record.target_resource,) if record.target_resource else (),
        )
        return Verdict(confirmed, record)
