"""Collecting the resource ids a payload names, and the VMs among them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeVar

from ..resources import ARM_ID, VmRef, vm_ref_of

_T = TypeVar("_T")

# The VM of a resource id, remembered for the ids seen last: a deployment watches a bounded fleet, and
# the same VM ids come back in alert after alert (in the payload, in Azure's record, in the plan). A
# VmRef is immutable, so one may be shared; an id seen once costs one entry of a bounded memory.
# Payloads are parsed before Azure confirms them: whoever holds the webhook key chooses these texts, so
# only texts as short as real ids are remembered (an ARM id is a few hundred characters at most); a
# longer one is worked out every time and never held.
REMEMBERED_TEXT_MAX = 1024
_REMEMBERED = 4096


def _short_texts_remembered(work: Callable[[str], _T]) -> Callable[[str], _T]:
    remembered = lru_cache(maxsize=_REMEMBERED)(work)

    def answer(text: str) -> _T:
        return remembered(text) if len(text) <= REMEMBERED_TEXT_MAX else work(text)

    return answer


_vm_of_text = _short_texts_remembered(vm_ref_of)


# ``VmRef.parse`` of a text (a VM's own id, nothing below it), remembered as ``vm_of`` is.
vm_id_of = _short_texts_remembered(VmRef.parse)


def vm_of(resource_id: object) -> VmRef | None:
    """``vm_ref_of(resource_id)``, remembered for text ids."""
    return _vm_of_text(resource_id) if type(resource_id) is str else vm_ref_of(resource_id)  # type: ignore[arg-type]


def _work_out(value: str) -> tuple[str, str, VmRef | None] | None:
    """What an id adds to a collector (its key, its spelling, its VM); None when it is no ARM id."""
    text = value.strip()
    if not ARM_ID.match(text):  # is_arm_id, on the text stripped once
        return None
    shown = text.rstrip("/")
    return shown.lower(), shown, _vm_of_text(text)  # the key is normalize(text)


_seen = _short_texts_remembered(_work_out)


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
        seen = _seen(value)
        if seen is None:
            return
        key, shown, vm = seen
        if key in self._resources:
            # The same id in another case or with more trailing slashes: the same VM (or none), and
            # the first spelling was kept already.
            return
        self._resources[key] = shown
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
