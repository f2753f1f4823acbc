"""Azure resource ids: parsed, compared case-insensitively, displayed as given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_VM_PREFIX = re.compile(
    r"^(/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+))",
    re.IGNORECASE,
)
_ARM_ID = re.compile(r"^/subscriptions/[^/]+(/.*)?$", re.IGNORECASE)
ARM_ID = _ARM_ID  # matches an ARM id already stripped of blanks (see is_arm_id)


def normalize(resource_id: str) -> str:
    """The comparison key of an ARM id: lower case, no trailing slash."""
    return resource_id.strip().rstrip("/").lower()


def is_arm_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ARM_ID.match(value.strip()))


@dataclass(frozen=True)
class VmRef:
    """A virtual machine id. Equality and hashing use the normalised key; ``id`` keeps the original."""

    id: str = field(compare=False)
    key: str = field(repr=False)
    subscription: str = field(compare=False, repr=False)
    resource_group: str = field(compare=False, repr=False)
    name: str = field(compare=False, repr=False)

    @classmethod
    def parse(cls, resource_id: str) -> VmRef | None:
        """A VmRef when ``resource_id`` names a VM (not a child resource of one), else None."""
        if not isinstance(resource_id, str):
            return None
        text = resource_id.strip()
        match = _VM_ID.match(text)
        if not match:
            return None
        text = text.rstrip("/")
        return cls(
            id=text,
            key=normalize(text),
            subscription=match["sub"],
            resource_group=match["rg"],
            name=match["name"],
        )

    def __str__(self) -> str:
        return self.id


def vm_ref_of(resource_id: str) -> VmRef | None:
    """The VM a resource id names or belongs to (``.../virtualMachines/x/extensions/y`` -> x)."""
    if not isinstance(resource_id, str):
        return None
    match = _VM_PREFIX.match(resource_id.strip())
    if not match:
        return None
    text = match[1]
    if text != text.strip():  # a name ending in blanks: let parse decide, as for any id
        return VmRef.parse(text)
    # The prefix is a VM id already: build the reference from this match instead of matching again.
    return VmRef(
        id=text, key=text.lower(), subscription=match["sub"], resource_group=match["rg"], name=match["name"]
    )
