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

from dataclasses import dataclass, replace
from datetime import timedelta

from .errors import NotFound, RemediationError, Throttled, Transient
from .frozen import build
from .ports import AlertRecord, AlertRuleRecord, Alerts, Clock
from .provenance_record import (
    FIRED_TOLERANCE,
    PREFIX,
    check_record,
    parse_time,
    recorded_signal,
    rule_key,
    service_name,
    target_refusal,
)
from .provenance_trust import (
    TRUST_SETTING,
    how_to_trust,
    rule_refusal,
    rule_trusted,
    trusted_rule_problem,
    under,
)
from .readcache import TtlCache
from .resources import normalize
from .signals.model import Signal

__all__ = [
    "ALERT_TTL",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_JOBS",
    "FIRED_TOLERANCE",
    "PREFIX",
    "RULE_TTL",
    "TRUST_SETTING",
    "AlertGate",
    "ProvenanceSettings",
    "ProvenanceUnavailable",
    "Verdict",
    "check_record",
    "fan_out_refusal",
    "how_to_trust",
    "parse_time",
    "recorded_signal",
    "rule_refusal",
    "rule_trusted",
    "service_name",
    "target_refusal",
    "trusted_rule_problem",
    "under",
]

# A notification is sent right after the alert fires; the Action Group retries a failed webhook call up
# to 5 times over about two minutes (5 s, 20 s, 5 s, 40 s, 5 s apart, 10 s timeouts), and this app
# answers 503 while its storage or Azure Monitor is briefly away, which starts those retries again.
# 30 minutes covers all of that with room to spare, and still refuses a replayed or made-up old alert.
DEFAULT_MAX_AGE = timedelta(minutes=30)
DEFAULT_MAX_JOBS = 20
# Reads remembered by one process (see the module's docstring).
RULE_TTL = timedelta(seconds=30)
ALERT_TTL = timedelta(seconds=30)
RULES_REMEMBERED = 256
ALERTS_REMEMBERED = 4096


class ProvenanceUnavailable(Transient):
    """Azure Monitor could not be asked (after the adapter's bounded retries): nothing may act."""


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
        if self._alerts.enabled:  # the key is worked out only when there is a memory to put it in
            self._alerts.put(normalize(signal.id), record)
        return self._judge(signal, record)

    def _remembered(self, signal: Signal) -> AlertRecord | None:
        """This process's recent read of the alert, when it records the condition the body claims.

        A Resolved notification is always read afresh: it cancels jobs, and a remembered Fired record
        would refuse it.
        """
        if signal.state != "fired" or not self._alerts.enabled:
            return None
        record = self._alerts.get(normalize(signal.id))
        if record is None or record.monitor_condition.strip().lower() != "fired":
            return None
        return record

    def _rule(self, rule_id: str) -> AlertRuleRecord:
        """The alert rule, from ARM or from this process's read of it less than ``rule_ttl`` ago."""
        key = rule_key(rule_id)  # normalize(rule_id), worked out once per rule
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
        return build(
            Verdict,
            {"signal": confirmed, "record": record, "refusal": None, "notes": notes, "remembered": False},
        )
