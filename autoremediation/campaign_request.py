"""A campaign request, checked: the limits (counts or percentages of the targets) and which VMs.

``POST /api/campaigns`` and ``remediate campaign`` give the same shape; every bad field is refused here,
with a clear message, before anything is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, NotFound, RemediationError
from .resources import VmRef, normalize

if TYPE_CHECKING:
    from .services import Services

MAX_TARGETS = 20_000
MAX_CONCURRENCY = 1_000  # bounds ARM's request rate from one campaign

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
_SUBSCRIPTION = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RG_NAME = re.compile(r"^[-\w._()]{1,90}$")
_REQUEST_FIELDS = frozenset(
    {"id", "remediation", "targets", "parameters", "maxConcurrency", "maxErrors", "dryRun", "reason"}
)
_TARGET_FIELDS = frozenset({"tag", "resourceGroup", "subscription", "vmIds"})


def check_campaign_id(campaign_id: object) -> str:
    """The id, or NotFound: a malformed id names no campaign (and never reaches the store)."""
    if not isinstance(campaign_id, str) or not _ID.match(campaign_id):
        raise NotFound(f"no campaign {str(campaign_id)[:100]!r}")
    return campaign_id


# ---- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A count or a percentage of the target count, as the operator wrote it (``10`` or ``"5%"``)."""

    value: Fraction
    percent: bool

    @classmethod
    def parse(cls, raw: object, what: str, *, minimum: int) -> Limit:
        if isinstance(raw, bool) or raw is None:
            raise InvalidInput(f"{what} must be a whole number or a percentage like 10%, not {raw!r}")
        match = _LIMIT.match(str(raw))
        if not match:
            raise InvalidInput(f"{what} {str(raw)[:40]!r} must be a whole number or a percentage like 10%")
        value, percent = Fraction(match[1]), bool(match[2])
        if percent:
            if value > 100 or (minimum > 0 and value == 0):
                low = "more than 0" if minimum > 0 else "0"
                raise InvalidInput(f"{what} {str(raw).strip()} must be between {low} and 100%")
        elif value.denominator != 1 or value < minimum:
            raise InvalidInput(f"{what} {str(raw).strip()} must be a whole number of at least {minimum}")
        return cls(value, percent)

    def concurrency(self, targets: int) -> int:
        """Percentages round up, so 1% of 50 VMs still lets one run; never below 1."""
        if not self.percent:
            return min(MAX_CONCURRENCY, max(1, int(self.value)))
        return min(MAX_CONCURRENCY, max(1, math.ceil(self.value * targets / 100)))

    def errors(self, targets: int) -> int:
        """Percentages round down: 10% of 15 VMs tolerates 1 error, never 2."""
        if not self.percent:
            return int(self.value)
        return math.floor(self.value * targets / 100)

    def __str__(self) -> str:
        number = str(self.value.numerator) if self.value.denominator == 1 else str(float(self.value))
        return number + ("%" if self.percent else "")


# ---- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """Which VMs: every VM under ``scope`` carrying ``tags``, or exactly ``vm_ids``."""

    scope: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    vm_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{len(self.vm_ids)} listed VM(s)"] if self.vm_ids else [self.scope or "-"]
        parts += [f"tag {k}={v if v is not None else '*'}" for k, v in self.tags]
        return ", ".join(parts)


@dataclass(frozen=True)
class CampaignRequest:
    remediation: str
    selector: Selector
    parameters: dict[str, str]
    max_concurrency: Limit
    max_errors: Limit
    dry_run: bool = False
    campaign_id: str | None = None
    reason: str = ""


def parse_tag(raw: object) -> tuple[str, str | None]:
    """``K=V`` (or a bare ``K``: any value) -> (name, value)."""
    if not isinstance(raw, str) or not raw.strip() or raw.strip().startswith("="):
        raise InvalidInput(f"tag {raw!r} must look like NAME=VALUE (or NAME for any value)")
    name, sep, value = raw.partition("=")
    return name.strip(), (value.strip() if sep else None)


def _tags(raw: object) -> tuple[tuple[str, str | None], ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (parse_tag(raw),)
    if isinstance(raw, Mapping):
        out = []
        for name, value in raw.items():
            if not isinstance(name, str) or not name.strip() or not isinstance(value, str | None):
                raise InvalidInput(f"targets.tag: {name!r}: {value!r} must map a tag name to a text value")
            out.append((name.strip(), value.strip() if isinstance(value, str) else None))
        return tuple(out)
    if isinstance(raw, list):
        return tuple(parse_tag(item) for item in raw)
    raise InvalidInput("targets.tag must be NAME=VALUE, a list of them, or an object of name: value")


def _subscription(raw: object) -> str:
    text = raw.strip().strip("/") if isinstance(raw, str) else ""
    if text.lower().startswith("subscriptions/"):
        text = text.split("/", 1)[1]
    if not _SUBSCRIPTION.match(text):
        raise InvalidInput(f"subscription {raw!r} is not a subscription id (a GUID)")
    return text


def _scope(targets: Mapping[str, Any], default_subscription: str | None) -> str | None:
    group = targets.get("resourceGroup")
    sub = targets.get("subscription")
    subscription = _subscription(sub) if sub is not None else None
    if group is None:
        if subscription is not None:
            return f"/subscriptions/{subscription}"
        return None
    if not isinstance(group, str) or not group.strip():
        raise InvalidInput(f"resource group {group!r} must be a name or a resource group id")
    text = group.strip().rstrip("/")
    match = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)$", text, re.IGNORECASE)
    if match:
        found = _subscription(match[1])
        if subscription is not None and found.lower() != subscription.lower():
            raise InvalidInput(f"resource group {text} is not in subscription {subscription}")
        return f"/subscriptions/{found}/resourceGroups/{match[2]}"
    if not _RG_NAME.match(text):
        raise InvalidInput(f"resource group {group!r} is not a resource group name or id")
    subscription = subscription or default_subscription
    if subscription is None:
        raise InvalidInput(
            f"resource group {text} needs a subscription: give one, or set AZURE_SUBSCRIPTION_ID"
        )
    return f"/subscriptions/{_subscription(subscription)}/resourceGroups/{text}"


def _vm_ids(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("targets.vmIds must be a non-empty list of VM resource ids")
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        ref = VmRef.parse(item) if isinstance(item, str) else None
        if ref is None:
            raise InvalidInput(f"targets.vmIds[{index}]: {str(item)[:200]!r} is not a VM resource id")
        seen.setdefault(ref.key, ref.id)
    if len(seen) > MAX_TARGETS:
        raise InvalidInput(f"targets.vmIds lists {len(seen)} VMs; a campaign takes at most {MAX_TARGETS}")
    return tuple(seen.values())


def parse_request(request: object, services: Services) -> CampaignRequest:
    """Check a campaign request (the API body, or the CLI's arguments in the same shape)."""
    if not isinstance(request, Mapping):
        raise InvalidInput("a campaign request must be a JSON object")
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_REQUEST_FIELDS))})")
    remediation_id = request.get("remediation")
    if not isinstance(remediation_id, str) or not remediation_id.strip():
        raise InvalidInput("remediation is required: the id of a catalog remediation")
    remediation = services.catalog.get(remediation_id.strip())

    targets = request.get("targets")
    if not isinstance(targets, Mapping) or not targets:
        raise InvalidInput("targets is required: an object with tag, resourceGroup, subscription or vmIds")
    unknown = sorted(set(targets) - _TARGET_FIELDS)
    if unknown:
        raise InvalidInput(
            f"targets: unknown field {unknown[0]!r} (known: {', '.join(sorted(_TARGET_FIELDS))})"
        )
    tags = _tags(targets.get("tag"))
    if "vmIds" in targets:
        if len(targets) > 1:
            raise InvalidInput("targets.vmIds cannot be combined with tag, resourceGroup or subscription")
        selector = Selector(vm_ids=_vm_ids(targets["vmIds"]))
    else:
        scope = _scope(targets, services.settings.subscription_id)
        if scope is None:
            if not tags:
                raise InvalidInput("targets needs a tag, a resourceGroup, a subscription or vmIds")
            if services.settings.subscription_id is None:
                raise InvalidInput(
                    "a tag needs a subscription to search: give one, or set AZURE_SUBSCRIPTION_ID"
                )
            scope = f"/subscriptions/{_subscription(services.settings.subscription_id)}"
        selector = Selector(scope=scope, tags=tags)

    raw_parameters = request.get("parameters") or {}
    if not isinstance(raw_parameters, Mapping):
        raise InvalidInput("parameters must be an object of name: value")
    parameters = _check_parameters(remediation, raw_parameters)

    if "maxConcurrency" not in request:
        raise InvalidInput("maxConcurrency is required: a number of VMs or a percentage like 10%")
    if "maxErrors" not in request:
        raise InvalidInput("maxErrors is required: a number of failed VMs or a percentage like 5%")
    concurrency = Limit.parse(request["maxConcurrency"], "maxConcurrency", minimum=1)
    errors = Limit.parse(request["maxErrors"], "maxErrors", minimum=0)

    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dryRun must be true or false, not {dry_run!r}")
    campaign_id = request.get("id")
    if campaign_id is not None and (not isinstance(campaign_id, str) or not _ID.match(campaign_id)):
        raise InvalidInput(
            f"id {campaign_id!r} must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit"
        )
    reason = request.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInput("reason must be text of at most 500 characters")
    return CampaignRequest(
        remediation=remediation.id,
        selector=selector,
        parameters=parameters,
        max_concurrency=concurrency,
        max_errors=errors,
        dry_run=dry_run,
        campaign_id=campaign_id,
        reason=reason.strip(),
    )


def _check_parameters(remediation: Any, given: Mapping[str, Any]) -> dict[str, str]:
    """Bad values fail the whole request now, not one skipped job per VM later."""
    problems: list[RemediationError] = []
    for os_type in remediation.os_types:
        try:
            remediation.resolve_parameters(given, os_type)
        except InvalidInput as error:
            problems.append(error)
    if problems and len(problems) == len(remediation.os_types):
        raise problems[0]
    return {name: remediation.parameters[name].validate(value) for name, value in given.items()}


# ---- targets --------------------------------------------------------------------------------------


def _tag_matches(tags: Mapping[str, str], wanted: Iterable[tuple[str, str | None]]) -> bool:
    # Azure tag names are case-insensitive; values are compared the same way the opt-in guard does.
    lowered = {k.lower(): (v or "").strip().lower() for k, v in tags.items()}
    for name, value in wanted:
        if name.lower() not in lowered:
            return False
        if value is not None and lowered[name.lower()] != value.lower():
            return False
    return True


def resolve_targets(services: Services, selector: Selector) -> list[str]:
    """The VM ids a selector names, listed through ARM (one list call per scope), sorted and unique."""
    if selector.vm_ids:
        return sorted(selector.vm_ids, key=normalize)
    assert selector.scope is not None
    found = {
        normalize(vm.id): vm.id
        for vm in services.compute.list_vms(selector.scope)
        if _tag_matches(vm.tags, selector.tags)
    }
    if len(found) > MAX_TARGETS:
        raise InvalidInput(
            f"{selector.describe()} matches {len(found)} VMs; a campaign takes at most {MAX_TARGETS}"
        )
    return [found[key] for key in sorted(found)]


def idempotency_key(campaign_id: str, vm_id: str, remediation: str) -> str:
    return f"campaign:{campaign_id}:{normalize(vm_id)}:{remediation}"
