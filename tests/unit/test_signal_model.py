"""``Signal.new`` builds the Signal that ``Signal(...)`` builds, and refuses what it refuses."""

from __future__ import annotations

import pytest

from autoremediation.signals.model import Signal


def test_new_is_the_signal_the_constructor_makes() -> None:
    made = Signal.new(id="s-1", source="alert", type="disk-full", severity="Sev2")
    assert made == Signal(id="s-1", source="alert", type="disk-full", severity="Sev2")
    assert made.custom_properties == {} and made.extra == {}
    assert made.custom_properties is not Signal.new(id="s-2", source="alert", type="x").custom_properties


def test_new_refuses_an_unknown_field_and_a_missing_required_one() -> None:
    with pytest.raises(TypeError, match="no field 'colour'"):
        Signal.new(id="s-1", source="alert", type="disk-full", colour="red")
    with pytest.raises(TypeError, match="needs field 'type'"):
        Signal.new(id="s-1", source="alert")
    with pytest.raises(TypeError):
        Signal(id="s-1", source="alert")  # type: ignore[call-arg]  # the constructor refuses it too
