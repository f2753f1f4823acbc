"""The Signal: what every inbound payload is reduced to before routing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from ..frozen import build
from ..resources import VmRef

Source = Literal["alert", "event", "manual"]
State = Literal["fired", "resolved"]


@dataclass(frozen=True)
class ManualRequest:
    remediation: str
    parameters: Mapping[str, str]
    reason: str
    dry_run: bool
    request_id: str
    requested_by: str = "operator"
    requested_by_name: str = ""


@dataclass(frozen=True)
class Signal:
    """One alert, event or manual request, normalised.

    ``type`` is the alert's monitoring service (``Platform``, ``Log Alerts V2``, ``Activity Log -
    Administrative``, ``Resource Health``, ``ServiceHealth``, ``Log Analytics``, ``Application
    Insights``), the Event Grid event type, or ``manual``.
    """

    id: str
    source: Source
    type: str
    state: State | None = None
    targets: tuple[VmRef, ...] = ()
    resources: tuple[str, ...] = ()  # every resource id the payload names, VMs or not, as given
    rule: str | None = None
    severity: str | None = None
    signal_type: str | None = None  # "Metric", "Log", "Activity Log", ...
    fired_at: str | None = None
    resolved_at: str | None = None
    time: str | None = None
    operation_name: str | None = None
    resource_id: str | None = None  # the resource an activity-log alert or an event is about
    status: str | None = None  # activity-log / event status ("Succeeded", ...)
    query: str | None = None
    metrics: tuple[str, ...] = ()
    dimensions: tuple[Mapping[str, str], ...] = ()  # one mapping per alert condition / row
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    manual: ManualRequest | None = None
    validation_code: str | None = None  # Event Grid subscription validation: never routed
    description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Signal:
        """A Signal from a dict holding every field by name, taken as its own attributes (not copied).

        The same Signal as ``Signal(**values)`` without the generated frozen ``__init__``, which sets
        each of the 23 fields through ``object.__setattr__``: intake builds two Signals per alert (the
        payload's, then Azure's record of it). The caller hands over ``values`` and keeps no reference.
        """
        return build(cls, values)

    @classmethod
    def new(cls, **values: Any) -> Signal:
        """``Signal(**values)``, built as :meth:`of` builds: the fields not given take their defaults."""
        full = {**_SIGNAL_DEFAULTS, "custom_properties": {}, "extra": {}, **values}
        if len(full) != len(_SIGNAL_DEFAULTS):
            unknown = sorted(set(full) - set(_SIGNAL_DEFAULTS))
            raise TypeError(f"Signal has no field {unknown[0]!r}")
        if not _SIGNAL_REQUIRED.issubset(values):  # no set made when nothing is missing
            missing = _SIGNAL_REQUIRED - values.keys()
            raise TypeError(f"Signal needs field {sorted(missing)[0]!r}")
        return build(cls, full)

    @property
    def is_validation(self) -> bool:
        return self.validation_code is not None

    def summary(self) -> dict[str, Any]:
        """The ``signals[]`` entry of ``remediate plan --json``: JSON-ready, the same keys every time."""
        return {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "state": self.state,
            "targets": [t.id for t in self.targets],
            "time": self.time,
            "rule": self.rule,
            "operation": self.operation_name,
            "resource": self.resource_id,
            "remediation": self.manual.remediation if self.manual else None,
            "dryRun": self.manual.dry_run if self.manual else None,
            "validation": self.is_validation,
        }


# Every field of a Signal with its default (a required field: None until given), for Signal.new.
_SIGNAL_DEFAULTS: dict[str, Any] = {
    f.name: None if f.default is MISSING else f.default for f in fields(Signal)
}
# The fields Signal(...) cannot do without: Signal.new refuses to build one without them, as it does.
_SIGNAL_REQUIRED = frozenset(
    f.name for f in fields(Signal) if f.default is MISSING and f.default_factory is MISSING
)
