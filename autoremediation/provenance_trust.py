"""Which alert rules the deployment trusts, and what a trusted rule may still not do.

An alert starts a remediation only when its rule is one the deployment trusts (the rules ``infra/``
deploys, plus the ids or resource-group-scoped globs in ``REMEDIATION_TRUSTED_ALERT_RULES``), the rule
is enabled in ARM and the alert's target lies under the rule's scopes. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

from .ports import AlertRecord, AlertRuleRecord
from .provenance_record import PREFIX
from .resources import normalize

TRUST_SETTING = "REMEDIATION_TRUSTED_ALERT_RULES"
_WORKSPACE_TYPES = ("microsoft.operationalinsights/workspaces", "microsoft.insights/components")

_RULE_GROUP = re.compile(
    r"^/subscriptions/[^/*?\[\]]+/resourceGroups/[^/*?\[\]]+/providers/.+$", re.IGNORECASE
)


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
    return _rule_trusted(rule_id, tuple(patterns))


@lru_cache(maxsize=1024)
def _rule_trusted(rule_id: str, patterns: tuple[str, ...]) -> bool:
    # A deployment has one trust list and a few rules, each alert asks again: answered once per rule.
    key = normalize(rule_id)
    return any(pattern.match(key) for pattern in _trusted_patterns(patterns))


@lru_cache(maxsize=16)
def _trusted_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """The valid entries of a trust list, normalised and compiled as ``fnmatch.fnmatchcase`` compiles
    them (a deployment has one list: worked out once)."""
    return tuple(
        re.compile(fnmatch.translate(normalize(p))) for p in patterns if trusted_rule_problem(p) is None
    )


def how_to_trust(rule_id: str) -> str:
    return (
        f"alert rule {rule_id} is not trusted: no job. To let it start remediations, add its resource "
        f"id (or a glob over its resource group) to {TRUST_SETTING}"
    )


def under(resource_id: str, scope: str) -> bool:
    """Whether ``resource_id`` is ``scope`` or lies below it (ARM ids, case-insensitive)."""
    return _under_key(normalize(resource_id), normalize(scope))


def _under_key(resource: str, container: str) -> bool:
    return bool(container) and (resource == container or resource.startswith(container + "/"))


def _scope_holds(scope: str, target_key: str) -> bool:
    """Whether a rule scope holds a resource (``target_key``: its id normalised)."""
    return _under_key(target_key, _container(scope))


@lru_cache(maxsize=1024)
def _container(scope: str) -> str:
    """The normalised id a rule scope holds the resources below (a rule has a few scopes and is read
    again and again: worked out once per scope)."""
    # A log search rule scoped to a workspace (or Application Insights) reports the VM that sent the
    # rows (``resourceIdColumn``): the VM is not below the workspace by id. Such a scope holds the
    # VMs of the workspace's own subscription only.
    scope_key = normalize(scope)
    if any(f"/providers/{kind}/" in scope_key + "/" for kind in _WORKSPACE_TYPES):
        return normalize("/".join(scope_key.split("/")[:3]))
    return scope_key


def rule_refusal(record: AlertRecord, rule: AlertRuleRecord) -> str | None:
    """Why a trusted rule's alert may still not act: the rule is disabled, or the alert's target lies
    outside the rule's scopes (a rule trusted by a glob must not reach any VM)."""
    if not rule.enabled:
        return f"{PREFIX} alert rule {record.rule_id} is disabled in ARM: its alerts start nothing"
    if not _target_in_scopes(record.target_resource, rule.scopes):
        return (
            f"{PREFIX} alert {record.id} targets {record.target_resource or 'no resource'}, which is not "
            f"under the scopes of rule {record.rule_id} ({', '.join(rule.scopes) or 'none recorded'})"
        )
    return None


def _target_in_scopes(target: str, scopes: tuple[str, ...]) -> bool:
    """Whether one of ``scopes`` holds the resource ``target`` (see ``_scope_holds``)."""
    if len(target) <= _REMEMBERED_TEXT_MAX:
        try:
            return _target_in_scopes_remembered(target, scopes)
        except TypeError:  # scopes given as a list: worked out every time
            pass
    return _target_in_scopes_worked_out(target, scopes)


def _target_in_scopes_worked_out(target: str, scopes: tuple[str, ...]) -> bool:
    target_key = normalize(target)
    return any(_scope_holds(scope, target_key) for scope in scopes)


# A fleet's alerts name a bounded set of VMs under a few rules, and each alert asks again: answered once
# per (target, scopes). Only texts as short as real ids are remembered.
_REMEMBERED_TEXT_MAX = 1024
_target_in_scopes_remembered = lru_cache(maxsize=4096)(_target_in_scopes_worked_out)
