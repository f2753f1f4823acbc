"""The ports between the engine and the world: plain data in, plain data out.

Adapters implement these Protocols: ``azure/`` on the real SDKs, ``store/`` on Table Storage and SQLite,
``localfleet`` in tests and the demo. Nothing here imports an SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from .jobs import Job

OsType = Literal["linux", "windows"]
RunState = Literal["pending", "running", "succeeded", "failed", "timed-out", "canceled", "unknown"]
TERMINAL_RUN_STATES: frozenset[str] = frozenset({"succeeded", "failed", "timed-out", "canceled"})


@dataclass(frozen=True)
class VmFacts:
    """What the guards need to know about a VM, read fresh from one instance-view call."""

    id: str
    name: str
    location: str
    os_type: OsType
    power_state: str  # "running", "stopped", "deallocated", "starting", ... or "unknown"
    agent_ready: bool
    tags: Mapping[str, str] = field(default_factory=dict)
    nic_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRequest:
    """One script to run on one VM. ``run_name`` is derived from the job id so a retry re-attaches."""

    vm_id: str
    run_name: str
    os_type: OsType
    script: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    protected_parameters: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 600
    # False when no earlier step can have sent this run: the adapter then skips the look for an existing
    # run command before its PUT (one ARM read fewer per job).
    may_exist: bool = True
    location: str = ""  # the VM's region, when the caller read it already ("" : the adapter reads it)


@dataclass(frozen=True)
class RunStatus:
    """Where a run command is, and what it said when it ended."""

    state: RunState
    exit_code: int | None = None
    output: str = ""
    error: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    result: Mapping[str, Any] | None = None  # the script's REMEDIATION_RESULT line, parsed
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_RUN_STATES


class Compute(Protocol):
    def get_vm(self, vm_id: str) -> VmFacts:
        """Facts of one VM; raises NotFound."""
        ...

    def list_vms(self, scope: str) -> list[VmFacts]:
        """Every VM under a subscription or resource group id: id, name, location, OS and tags. Its power
        state and agent status are not listed (``unknown``, not ready): ``get_vm`` reads them."""
        ...

    def start_run(self, request: RunRequest) -> RunStatus:
        """Start the script, or re-attach to the run of the same name if it exists already."""
        ...

    def get_run(self, vm_id: str, run_name: str) -> RunStatus: ...

    def cancel_run(self, vm_id: str, run_name: str) -> None:
        """Stop a run and remove its resource; no error if it is gone."""
        ...


@dataclass(frozen=True)
class SecurityRule:
    """An NSG security rule, with the list and single forms of ARM folded into tuples."""

    name: str
    priority: int
    direction: Literal["Inbound", "Outbound"]
    access: Literal["Allow", "Deny"]
    protocol: str  # "Tcp", "Udp", "Icmp", "Esp", "Ah", "*"
    source_prefixes: tuple[str, ...] = ("*",)
    destination_prefixes: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    description: str = ""
    id: str = ""
    # Application security group ids a rule names instead of address prefixes (then those are empty).
    source_asgs: tuple[str, ...] = ()
    destination_asgs: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkSecurityGroup:
    id: str
    name: str
    location: str
    rules: tuple[SecurityRule, ...]
    default_rules: tuple[SecurityRule, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    nic_ids: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkInterface:
    id: str
    vm_id: str | None
    nsg_id: str | None
    subnet_ids: tuple[str, ...]
    private_ips: tuple[str, ...] = ()
    asg_ids: tuple[str, ...] | None = None  # application security groups of its IP configurations


@dataclass(frozen=True)
class VirtualNetworkPeering:
    name: str
    state: str  # "Connected", "Initiated", "Disconnected"
    remote_prefixes: tuple[str, ...] | None  # remoteAddressSpace; None when ARM did not give it
    allow_vnet_access: bool = True
    use_remote_gateways: bool = False
    remote_vnet_id: str = ""
    sync_level: str = ""  # "FullyInSync", "LocalNotInSync", ...; empty when ARM did not say


@dataclass(frozen=True)
class VirtualNetwork:
    """What the VirtualNetwork service tag of a VNet is made of, as ARM reports it."""

    id: str
    name: str
    address_prefixes: tuple[str, ...]
    peerings: tuple[VirtualNetworkPeering, ...] = ()
    gateway_subnet: bool = False  # a GatewaySubnet exists: a gateway may connect more address space
    routed_subnets: tuple[str, ...] = ()  # lower-case names of subnets with a route table (UDRs)


class Network(Protocol):
    def get_nsg(self, nsg_id: str) -> NetworkSecurityGroup: ...

    def get_nic(self, nic_id: str) -> NetworkInterface: ...

    def get_subnet_nsg(self, subnet_id: str) -> str | None:
        """The id of the NSG associated with a subnet, if any."""
        ...

    def put_security_rule(self, nsg_id: str, rule: SecurityRule) -> SecurityRule:
        """Create or update one rule (idempotent by name)."""
        ...


@dataclass(frozen=True)
class LeaseFacts:
    """What one read of a VM's lease tells the runner before it takes the lease."""

    holder: str | None  # the job holding it now; None when it is free or expired
    # When the last run of the asked remediation that may have changed the VM ended (dry runs and runs
    # whose script refused its input do not count): what the cooldown measures from.
    last_run_ended_at: datetime | None = None


class JobStore(Protocol):
    """Durable jobs, per-VM leases and campaigns. Implementations: SQLite and Azure Table Storage.

    Every update is a compare-and-swap on ``Job.version``: a stale writer gets ConcurrencyConflict.
    """

    def create(self, job: Job) -> tuple[Job, bool]:
        """Store ``job`` unless a job with its id exists; return the stored job and whether it is new."""
        ...

    def create_many(self, new_jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        """``create`` for each job, in order (a campaign's jobs): as one transaction where the store has
        them, else side by side; a job that exists is returned as stored, not replaced."""
        ...

    def get(self, job_id: str) -> Job:
        """The job; raises NotFound."""
        ...

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs that exist among ``job_ids``, by id, in as few requests as the store allows."""
        ...

    def update(self, job: Job) -> Job:
        """Write ``job`` if the stored version equals ``job.version``; return it with version + 1."""
        ...

    def list(
        self,
        *,
        target: str | None = None,
        status: str | Sequence[str] | None = None,
        remediation: str | None = None,
        alert_id: str | None = None,
        campaign_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs matching every filter, newest ``created_at`` first; ``target`` is compared normalised."""
        ...

    def last_outcome(self, target: str, remediation: str) -> Job | None:
        """The most recent job for this VM and remediation that ran a script (ended or not)."""
        ...

    def lease_facts(self, key: str, remediation: str, now: datetime, *, runs_since: datetime) -> LeaseFacts:
        """The lease on ``key`` and the end of the last run of ``remediation`` on it (recorded, or the
        pending run of the job that took the lease for it last, once that job has ended), in one read in
        the common case. ``runs_since``: runs that ended before it do not matter to the caller (its
        cooldown window), so a store need not look for them (neither among the jobs recorded before it
        kept runs, nor in a pending job whose lease expired before it)."""
        ...

    def acquire_lease(
        self, key: str, holder: str, ttl_seconds: float, now: datetime, *, remediation: str | None = None
    ) -> bool:
        """Take (or renew, when ``holder`` has it) the lease on ``key``; False while another holds it.

        A holder whose job has ended holds nothing: a live lease counts only while its holder's job
        exists and has not ended (a holder that no job backs, or whose job ended while its script may
        still run, ``verification.may_still_run``, counts until the lease expires).
        ``remediation``: ``holder`` is a job of it, whose run, once the job ends, counts for that
        remediation's cooldown on ``key`` as a recorded one does (``verification.run_record``), up to
        the lease's expiry this take sets; every renewal passes it too, to move that bound."""
        ...

    def release_lease(
        self, key: str, holder: str, *, ran: tuple[str, datetime] | None = None, tag: str | None = None
    ) -> None:
        """Give the lease back early (a holder whose job ended holds nothing anyway); no effect on the
        lease when ``holder`` does not have it. ``ran``: the holder's run of that remediation that may
        have changed the VM, ended at that time: recorded on the key (whoever holds it now) for
        ``lease_facts``; needed when the holder's lease may have lapsed before its job ended (its run
        may end after the bound its take set). ``tag``: ``lease_tag`` as the store that took or renewed
        the lease gave it (the job carries it), so another instance's release can skip a read; a stale
        one only costs that read."""
        ...

    def lease_tag(self, key: str) -> str | None:
        """An opaque version of the lease on ``key`` as this store last took or renewed it; None when
        the store has none or needs none."""
        ...

    def lease_holder(self, key: str, now: datetime) -> str | None:
        """The live holder whose job has not ended (or ended while its script may still run); None
        when the lease is free, expired or its holder's job ended."""
        ...

    def sweep_leases(self, now: datetime) -> int:
        """Delete expired leases that hold no record for the cooldown; return how many."""
        ...

    def delete_jobs(self, ended_before: datetime) -> int:
        """Retention: delete terminal jobs last updated before the cutoff; return how many."""
        ...

    def create_campaign(self, campaign: Mapping[str, Any]) -> bool: ...

    def get_campaign(self, campaign_id: str) -> dict[str, Any]: ...

    def update_campaign(self, campaign: Mapping[str, Any]) -> dict[str, Any]:
        """CAS on ``campaign["version"]``, like ``update``."""
        ...


@dataclass(frozen=True)
class QueueMessage:
    id: str
    pop_receipt: str
    job_id: str
    dequeue_count: int = 1


# Azure Storage Queue's limits: a message's delay (its first invisibility) and a received message's
# visibility timeout last at most 7 days, and the delay must end before its 7-day time to live does.
LONGEST_QUEUE_DELAY_SECONDS = 7 * 24 * 3600 - 1


class Queue(Protocol):
    def send(self, job_id: str, delay_seconds: float = 0) -> None: ...

    def receive(self, max_messages: int = 32, visibility_timeout: float = 300) -> list[QueueMessage]: ...

    def delete(self, message: QueueMessage) -> None: ...


@dataclass(frozen=True)
class UploadGrant:
    """Where a script may upload one blob: the URL (safe to record) and a short-lived SAS (never)."""

    blob_url: str
    sas: str = field(repr=False)
    expires_at: str = ""


class UploadGrants(Protocol):
    def grant(self, blob_name: str, lifetime_seconds: float) -> UploadGrant:
        """A write-only SAS for one new blob of the app's own container, valid for ``lifetime_seconds``."""
        ...


@dataclass(frozen=True)
class Switches:
    """The two settings an operator throws in an emergency: stop everything, or only pretend."""

    kill_switch: bool = False
    dry_run: bool = False


class SwitchSource(Protocol):
    def switches(self) -> Switches:
        """The switches as they are now: the runner asks again right before every outside action."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class AlertRecord:
    """An alert as Azure Monitor records it (Alerts Management ``alerts/{id}``), not as a payload claims.

    ``rule_id`` is the alert rule's resource id; ``target_resource`` the resource Azure fired the alert
    on (a log search rule split by ``_ResourceId`` gives one alert per VM, each targeting that VM).
    """

    id: str
    rule_id: str
    target_resource: str
    monitor_condition: str  # "Fired" or "Resolved"
    alert_state: str = "New"  # "New", "Acknowledged" or "Closed"
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    monitor_service: str = ""
    # What Azure recorded about the alert's condition: ``essentials.signalType`` and
    # ``properties.context`` (the alert context: ``condition.allOf[]`` with ``searchQuery``,
    # ``metricName``, ``dimensions``; an activity log alert's ``operationName``). Routing reads these,
    # never the notification body's copy of them.
    signal_type: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRuleRecord:
    """An alert rule read from ARM: what it says its custom properties are, whatever a payload says."""

    id: str
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    # ``properties.scopes``: the resources the rule watches; an alert of the rule may only act on a
    # resource under one of them. Empty when ARM did not say (then nothing is in scope).
    scopes: tuple[str, ...] = ()


class Alerts(Protocol):
    """Azure Monitor's records: the Alerts Management API and the alert-rule resources in ARM."""

    def get_alert(self, alert_id: str) -> AlertRecord:
        """The alert by its full id (``/subscriptions/.../providers/Microsoft.AlertsManagement/alerts/x``);
        raises NotFound."""
        ...

    def get_rule(self, rule_id: str) -> AlertRuleRecord:
        """A scheduled query, metric or activity log alert rule by resource id; raises NotFound."""
        ...

    def change_state(self, alert_id: str, new_state: str, comment: str) -> None:
        """Set the alert's user state (New, Acknowledged, Closed) with a comment."""
        ...
