"""Azure-side steps a remediation may run before its guest script, through the ports.

``nsg-allow-management`` (restore-management-access): for every NSG on the VM's path (subnet and NIC),
add an allow rule for the management sources just above the blocking rule. The customer's rules are
never changed; a VM or NSG with the quarantine tag is left alone and the job is skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from .detectors.addresses import TagAddresses
from .detectors.lockout import management_port
from .detectors.nsg import Level
from .detectors.nsg_fix import apply_management_allow, plan_management_allow
from .detectors.servicetags import TagResolver
from .jobs import Job
from .ports import Compute, Network

SKIP = "skip"
# The guest firewall step gets the same sources as concrete IPv4 ranges; nothing wider than this.
WIDEST_GUEST_PREFIX = 8


def guest_sources(sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """(concrete IPv4 CIDRs the guest firewall may accept, sources left out and why).

    A service tag such as ``VirtualNetwork`` names no addresses a guest firewall could match, and a
    range wider than /8 is no management source: both are left out, never widened to "anyone".
    """
    concrete: list[str] = []
    left_out: list[str] = []
    for source in sources:
        try:
            network = ipaddress.ip_network(source.strip(), strict=False)
        except ValueError:
            left_out.append(f"{source} (a service tag, not addresses)")
            continue
        if network.version != 4:
            left_out.append(f"{source} (IPv6: the guest step matches IPv4 only)")
        elif network.prefixlen < WIDEST_GUEST_PREFIX:
            left_out.append(f"{source} (wider than /{WIDEST_GUEST_PREFIX})")
        elif str(network) not in concrete:
            concrete.append(str(network))
    return concrete, left_out


class NsgAllowManagement:
    """The ``nsg-allow-management`` step. Checks before it changes, so a repeat changes nothing."""

    def __init__(
        self,
        network: Network,
        compute: Compute,
        sources: Sequence[str],
        quarantine_tag: str,
        *,
        service_tags: Mapping[str, TagAddresses] | None = None,
    ) -> None:
        self.network = network
        self.compute = compute
        self.sources = tuple(sources)
        self.quarantine_tag = quarantine_tag
        self.service_tags = dict(service_tags or {})

    def __call__(self, job: Job, vm: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        facts = self.compute.get_vm(job.target)
        port = int(job.parameters.get("port") or management_port(facts.os_type))
        # Plan every NSG on the path first and change nothing unless all of them may be changed: a
        # quarantined NSG behind a second NIC must not leave the first one half repaired.
        planned: list[tuple[dict[str, Any], Any, dict[str, TagAddresses]]] = []
        seen: set[str] = set()
        resolver = TagResolver(self.network, self.service_tags)
        for nic_id in facts.nic_ids:
            nic = self.network.get_nic(nic_id)
            tags = resolver.for_subnet(nic.subnet_ids[0] if nic.subnet_ids else None)
            path: list[tuple[Level, str | None]] = [
                ("subnet", self.network.get_subnet_nsg(s)) for s in nic.subnet_ids
            ]
            path.append(("nic", nic.nsg_id))
            for level, nsg_id in path:
                if not nsg_id or nsg_id.lower() in seen:
                    continue
                seen.add(nsg_id.lower())
                nsg = self.network.get_nsg(nsg_id)
                plan = plan_management_allow(
                    nsg,
                    facts,
                    port,
                    self.sources,
                    self.quarantine_tag,
                    level=level,
                    tag_prefixes=tags,
                    destinations=nic.private_ips,  # open the port on this VM only, not the whole NSG
                )
                record: dict[str, Any] = {
                    "nsg": nsg.id,
                    "level": level,
                    "action": plan.action,
                    "reason": plan.reason,
                    "rules": [f"{r.name} ({r.priority})" for r in plan.rules],
                }
                if plan.blocking is not None:
                    record["blockingRule"] = f"{plan.blocking.name} ({plan.blocking.priority})"
                if plan.action == SKIP:
                    return {
                        "action": SKIP,
                        "reason": plan.reason,
                        "port": port,
                        "nsgs": [r for r, _, _ in planned] + [record],
                    }
                planned.append((record, plan, tags))
        for record, plan, tags in planned:
            if plan.action != "add":
                continue
            if dry_run:
                record["action"] = "would-add"
            else:
                apply_management_allow(self.network, plan, tag_prefixes=tags)
        actions = [record for record, _, _ in planned]
        changed = any(a["action"] == "add" for a in actions)
        concrete, left_out = guest_sources(self.sources)
        return {
            "action": "add" if changed else "none",
            "port": port,
            "nsgs": actions,
            # What the guest firewall step may accept: these sources and no other (the runner passes
            # them to the script, overriding anything a request said).
            "scriptParameters": {"managementSources": ",".join(concrete)},
            "guestSourcesLeftOut": left_out,
        }
