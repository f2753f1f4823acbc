"""The engine, assembled from settings: store, queue, ARM adapters, planner, intake and runner.

One instance per process, built on first use, so a cold start pays only for what the invoked function
touches: the HTTP health check never imports an Azure SDK, the alert webhook never builds the
compute client unless a detector needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import Catalog
from .catalog_load import load_catalog
from .detectors.addresses import TagAddresses
from .intake import Intake
from .jobs import Job, Transition
from .planning import Detect, Planner, change_of
from .ports import Alerts, Clock, Compute, JobStore, Network, Queue, SystemClock, UploadGrants
from .provenance import AlertGate, ProvenanceSettings
from .routing import Finding, Route, load_routes
from .runner import ControlPlaneStep, Runner
from .settings import EnvironmentSwitches, Settings
from .signals.model import Signal

if TYPE_CHECKING:
    from .notify.notifier import Notifier


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        store: JobStore | None = None,
        queue: Queue | None = None,
        compute: Compute | None = None,
        network: Network | None = None,
        upload_grants: UploadGrants | None = None,
        alerts: Alerts | None = None,
        on_transition: Callable[[Job, Transition], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.on_transition = on_transition
        # Explicit parts win (tests, the CLI); the rest are made from settings when first needed.
        parts = {
            "queue": queue,
            "compute": compute,
            "network": network,
            "alerts": alerts,
            "upload_grants": upload_grants,
        }
        for name, value in parts.items():
            if value is not None:
                self.__dict__[name] = value
        if store is not None:
            self.__dict__["store"] = _observed(store)

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_dir)

    @cached_property
    def routes(self) -> tuple[Route, ...]:
        return load_routes(self.settings.catalog_dir, self.catalog)

    @cached_property
    def store(self) -> JobStore:
        from .store.factory import job_store_from_settings

        return _observed(job_store_from_settings(self.settings))

    @cached_property
    def queue(self) -> Queue:
        from .store.factory import queue_from_settings

        return queue_from_settings(self.settings, self.clock)

    @cached_property
    def compute(self) -> Compute:
        from .azure.compute import AzureCompute

        return AzureCompute(self.settings, polling_interval=min(self.settings.poll_seconds, 2.0))

    @cached_property
    def network(self) -> Network:
        from .azure.network import AzureNetwork

        return AzureNetwork(self.settings, polling_interval=min(self.settings.poll_seconds, 2.0))

    @cached_property
    def service_tags(self) -> dict[str, TagAddresses]:
        """The operator's Service Tags file (REMEDIATION_SERVICE_TAGS_FILE), read once; empty without."""
        if not self.settings.service_tags_file:
            return {}
        from .detectors.servicetags import load_service_tags

        path = Path(self.settings.service_tags_file)
        if not path.is_absolute():
            path = Path(__file__).resolve().parent.parent / path  # the app root, where the catalog is
        return load_service_tags(path)

    @cached_property
    def alerts(self) -> Alerts:
        from .azure.alerts import AzureAlerts
        from .azure.calls import Retrier

        # Short retries: the webhook answers 503 when Azure Monitor stays away, and the Action Group
        # retries the whole delivery; waiting longer here only risks its 10 s call timeout.
        return AzureAlerts(self.settings, retrier=Retrier(attempts=3, backoff=0.5, max_delay=2.0))

    @cached_property
    def gate(self) -> AlertGate:
        from datetime import timedelta

        settings = ProvenanceSettings(
            trusted_rules=self.settings.trusted_alert_rules,
            max_age=timedelta(minutes=self.settings.alert_max_age_minutes),
            max_jobs=self.settings.max_jobs_per_signal,
        )
        return AlertGate(self.alerts, settings, self.clock)

    def detect(self, name: str, signal: Signal) -> tuple[Sequence[Finding], Sequence[str]]:
        """The detectors routes may ask for, on this process's ARM adapters."""
        if name != "nsg-lockout":
            return (), (f"no detector named {name}",)
        from .detectors.lockout import detect_nsg_lockout
        from .resources import VmRef

        result = detect_nsg_lockout(
            signal,
            self.network,
            self.compute,
            self.settings.management_sources,
            service_tags=self.service_tags,
        )
        findings = []
        notes = list(result.notes)
        change = change_of(signal)
        for found in result.findings:
            target = VmRef.parse(found.target)
            remediation = self.catalog.for_condition(found.condition)
            if target is None or remediation is None:
                notes.append(f"{name}: no remediation for {found.condition} on {found.target}")
                continue
            findings.append(
                Finding(
                    signal=signal,
                    condition=found.condition,
                    remediation=remediation.id,
                    target=target,
                    parameters=dict(found.parameters),
                    # Read from Azure by the detector, not taken from the event: no payload claim.
                    origins=dict.fromkeys(found.parameters, "detector"),
                    route="detector:" + name,
                    evidence={
                        **found.evidence,
                        "reason": found.reason,
                        **({"change": change} if change else {}),
                    },
                )
            )
        return findings, notes

    @cached_property
    def planner(self) -> Planner:
        detect: Detect = self.detect
        return Planner(self.catalog, self.routes, detect=detect, gate=self.gate)

    @cached_property
    def intake(self) -> Intake:
        return Intake(self.planner, self.store, self.queue, self.clock)

    @cached_property
    def control_plane(self) -> dict[str, ControlPlaneStep]:
        from .controlplane import NsgAllowManagement

        return {
            "nsg-allow-management": NsgAllowManagement(
                self.network,
                self.compute,
                self.settings.management_sources,
                self.settings.quarantine_tag,
                service_tags=self.service_tags,
            )
        }

    @cached_property
    def notifier(self) -> Notifier | None:
        """Webhook notifications, when ``REMEDIATION_NOTIFY_URLS`` names any (else None: nothing imported)."""
        if not self.settings.notify_urls:
            return None
        from .notify.channels import parse_channels
        from .notify.notifier import Notifier
        from .runner import guard_settings

        return Notifier(
            parse_channels(self.settings.notify_urls),
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            guards=guard_settings(self.settings),
            on_success=self.settings.notify_on_success,
            budget_seconds=self.settings.notify_timeout_seconds,
        )

    @cached_property
    def runner(self) -> Runner:
        from .writeback import alert_writeback

        # Telemetry sees every transition through the store (see store.observed); the runner's hooks
        # tell people (after the step's write), close or comment the alert the job came from, and feed
        # the caller's own observer (the CLI's progress).
        writeback = alert_writeback(_Lazy(self), self.settings.alert_failure_state)
        notify = self.notifier.on_transition if self.notifier else None
        hooks = [h for h in (notify, writeback, self.on_transition) if h]

        def announce(job: Job, transition: Transition) -> None:
            for hook in hooks:
                hook(job, transition)

        return Runner(
            catalog=self.catalog,
            store=self.store,
            compute=self.compute,
            clock=self.clock,
            settings=self.settings,
            control_plane=self.control_plane,
            on_transition=announce,
            upload_grants=self.upload_grants,
            switches=EnvironmentSwitches(),
        )

    @cached_property
    def upload_grants(self) -> UploadGrants | None:
        """SAS minting for the diagnostics container, when storage for it is configured."""
        if not (self.settings.blob_service_uri or self.settings.storage_connection_string):
            return None
        from .azure.diagnostics import BlobUploadGrants

        return BlobUploadGrants.from_settings(self.settings)


class _Lazy:
    """The engine's Alerts adapter, built when a job from an alert first ends (not at cold start)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def get_alert(self, alert_id: str) -> Any:
        return self._services.alerts.get_alert(alert_id)

    def get_rule(self, rule_id: str) -> Any:
        return self._services.alerts.get_rule(rule_id)

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        self._services.alerts.change_state(alert_id, new_state, comment)


def _observed(store: JobStore) -> JobStore:
    """The store, announcing each transition it writes as an outcome event (once, after the write)."""
    from .store.observed import ObservedJobStore
    from .telemetry import emit_transition

    if isinstance(store, ObservedJobStore):
        return store
    return ObservedJobStore(store, emit_transition)


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process-wide engine, from the environment (the Function App's app settings)."""
    global _services
    with _lock:
        if _services is None:
            _services = Services(Settings.from_env())
        return _services


def set_services(services: Services | None) -> None:
    """Replace (or with None, forget) the process-wide engine: tests and the CLI."""
    global _services
    with _lock:
        _services = services
