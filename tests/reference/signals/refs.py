"""Collecting the resource ids a payload names, and the VMs among them."""

from __future__ import annotations

from collections.abc import Iterable

from ..resources import ARM_ID, VmRef, vm_ref_of


class ResourceCollector:
    """Every ARM id seen, once each (compared case-insensitively), in the order first seen.

    ``targets`` are the virtual machines those ids name or belong to (a VM extension or a health
    status under a VM targets that VM); ids of other resource types are kept in ``resources`` only.
    The first spelling of an id wins, so what the user wrote is what they see again.
    """

    def __init__(self) -> None:
        self._resources: dict[str, str] = {}
        self._targets: dict[str, VmRef] = {}

    def add(self, value: object) -> None:
        if not isinstance(value, str):
            return
        text = value.strip()
        if not ARM_ID.match(text):  # is_arm_id, on the text stripped once
            return
        shown = text.rstrip("/")
        self._resources.setdefault(shown.lower(), shown)  # normalize(text)
        vm = vm_ref_of(text)
        if vm is not None:
            self._targets.setdefault(vm.key, vm)

    def add_all(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(self._resources.values())

    @property
    def targets(self) -> tuple[VmRef, ...]:
        return tuple(self._targets.values())
