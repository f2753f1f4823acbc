"""NSG lockout detection: pure evaluation speed with resolved service tags, and one detection on the
local ARM emulator through the real SDK clients (latency and ARM reads, the VNet read included)."""

from __future__ import annotations

import time

from .common import Figure


def _evaluations_per_s(rounds: int) -> float:
    from autoremediation.detectors.nsg import Flow, evaluate_path
    from autoremediation.detectors.servicetags import virtual_network_tag
    from autoremediation.ports import (
        NetworkSecurityGroup,
        SecurityRule,
        VirtualNetwork,
        VirtualNetworkPeering,
    )

    def rules(prefix: str) -> tuple[SecurityRule, ...]:
        # 50 customer rules of every form: CIDR lists, tags, ranges, lists, other protocols.
        made = []
        for n in range(50):
            made.append(
                SecurityRule(
                    name=f"{prefix}-{n}",
                    priority=100 + 10 * n,
                    direction="Inbound",
                    access="Allow" if n % 3 else "Deny",
                    protocol=("Tcp", "Udp", "*")[n % 3],
                    source_prefixes=(f"10.{100 + n}.0.0/16", "Internet") if n % 2 else ("VirtualNetwork",),
                    destination_ports=(f"{1000 + n}", f"{2000 + n}-{2100 + n}"),
                )
            )
        return tuple(made)

    subnet = NetworkSecurityGroup("s", "nsg-subnet", "westeurope", rules("s"))
    nic = NetworkSecurityGroup("n", "nsg-nic", "westeurope", rules("n"))
    vnet = VirtualNetwork(
        "v", "app", ("10.1.0.0/16",), (VirtualNetworkPeering("p", "Connected", ("10.2.0.0/16",)),)
    )
    tags = {"VirtualNetwork": virtual_network_tag(vnet, "web")}
    flows = [
        Flow(22, source, destination="10.1.0.4")
        for source in ("VirtualNetwork", "198.51.100.0/24", "10.2.0.0/24")
    ]
    started = time.perf_counter()
    for _ in range(rounds):
        for flow in flows:
            evaluate_path(flow, subnet, nic, tags)
    return rounds * len(flows) / (time.perf_counter() - started)


def _detection(rounds: int) -> tuple[float, float]:
    """(median seconds per detection, ARM requests per detection) on the demo fleet."""
    from localfleet.server import FleetServer

    from autoremediation.azure import clients
    from autoremediation.azure.compute import AzureCompute
    from autoremediation.azure.network import AzureNetwork
    from autoremediation.detectors.lockout import detect_nsg_lockout
    from autoremediation.settings import Settings
    from autoremediation.signals.model import Signal

    with FleetServer(sandbox=False) as fleet:
        settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)
        network, compute = (
            AzureNetwork(settings, polling_interval=0),
            AzureCompute(settings, polling_interval=0),
        )
        group = f"/subscriptions/{fleet.subscription}/resourceGroups/rg-demo"
        nsg = f"{group}/providers/Microsoft.Network/networkSecurityGroups/nsg-demo"
        signal = Signal(
            id="e", source="event", type="Microsoft.Resources.ResourceWriteSuccess", resource_id=nsg
        )
        detect_nsg_lockout(signal, network, compute, ("VirtualNetwork",))  # warm: clients, TLS
        times = []
        before = len(fleet.calls)
        for _ in range(rounds):
            started = time.perf_counter()
            result = detect_nsg_lockout(signal, network, compute, ("VirtualNetwork",))
            times.append(time.perf_counter() - started)
            assert result.findings, "the demo fleet's locked-out VM is found"
        calls = (len(fleet.calls) - before) / rounds
    clients.clear_cache()
    times.sort()
    return times[len(times) // 2], calls


def figures(rounds: int, detections: int) -> list[Figure]:
    rate = _evaluations_per_s(rounds)
    seconds, calls = _detection(detections)
    return [
        Figure(
            "nsg_path_verdicts_per_s",
            round(rate),
            None,
            "> 1000",
            "evaluate_path: subnet + NIC NSG of 50 rules each, VirtualNetwork resolved with a peering, "
            "3 sources",
        ),
        Figure(
            "nsg_detection_ms",
            round(seconds * 1000, 1),
            None,
            "< 250",
            f"median of {detections} detect_nsg_lockout calls on the demo fleet (real SDK, HTTPS loopback)",
        ),
        Figure(
            "nsg_detection_arm_reads",
            calls,
            None,
            "<= 6",
            "ARM requests per detection: NSG, subnet, NIC, VM, VNet (one read serves VirtualNetwork)",
        ),
    ]
