"""Resource ids as Azure writes them: any case, any value type from a payload."""

from __future__ import annotations

from autoremediation.resources import VmRef, is_arm_id, normalize, vm_ref_of


def test_a_non_text_value_is_not_an_arm_id() -> None:
    assert is_arm_id(42) is False
    assert is_arm_id(None) is False
    assert is_arm_id(" /subscriptions/s1/resourceGroups/rg ") is True


def test_the_vm_of_a_child_resource_is_found_whatever_the_case() -> None:
    child = (
        "/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1/extensions/ama"
    )
    ref = vm_ref_of(child)
    assert ref is not None
    assert (ref.name, ref.resource_group, str(ref)) == (
        "vm1",
        "rg",
        "/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
    )


def test_a_vm_id_with_a_trailing_slash_is_shown_and_keyed_without_it() -> None:
    ref = VmRef.parse(
        "/subscriptions/s1/resourceGroups/RG-App/providers/Microsoft.Compute/virtualMachines/boX/"
    )
    assert ref is not None
    assert (
        str(ref) == "/subscriptions/s1/resourceGroups/RG-App/providers/Microsoft.Compute/virtualMachines/boX"
    )
    assert (
        ref.key == "/subscriptions/s1/resourcegroups/rg-app/providers/microsoft.compute/virtualmachines/box"
    )
    assert (ref.subscription, ref.resource_group, ref.name) == ("s1", "RG-App", "boX")
    assert normalize(" /subscriptions/s1/X/ ") == "/subscriptions/s1/x"
