"""A generated SDK model class is worked out by one thread at a time, so no response stays a raw dict.

Unguarded, two threads making the first object of one model class at once race inside ``Model.__new__``
and the SDK silently leaves nested values as dicts (a VM whose agent then looks not Ready). These tests
use a model class of their own, new to the process, on the real compute SDK's model base.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from azure.mgmt.compute._utils import model_base

from autoremediation.azure import clients, modelrace
from autoremediation.settings import Settings

# How long a second thread is given to get through a class another thread is still working out: with
# the guard it never can, so this bound only decides how fast an unguarded base fails the test.
SECOND_THREAD_CHANCE_SECONDS = 1.0


def _fresh_model_class() -> tuple[type, Any]:
    class Probe(model_base.Model):  # a class no thread has made an object of yet
        display_status: str | None = model_base.rest_field(name="displayStatus")

    return Probe, Probe.__dict__["display_status"]


def test_a_second_thread_waits_while_the_first_works_out_a_new_model_class() -> None:
    assert modelrace.guard("compute")
    probe, field = _fresh_model_class()
    resolve = field._get_deserialize_callable_from_annotation
    second_inside = threading.Event()
    second_done = threading.Event()
    seen: dict[str, Any] = {}

    def second() -> None:
        seen["second"] = probe({"displayStatus": "Ready"})
        second_done.set()

    def first_resolution(annotation: Any) -> Any:
        # Called inside the first thread's Model.__new__, before the class is marked worked out.
        if threading.current_thread() is threading.main_thread():
            worker = threading.Thread(target=second)
            worker.start()
            seen["second_finished_meanwhile"] = second_done.wait(SECOND_THREAD_CHANCE_SECONDS)
            seen["worker"] = worker
        else:
            second_inside.set()
        return resolve(annotation)

    field._get_deserialize_callable_from_annotation = first_resolution
    first = probe({"displayStatus": "Ready"})
    seen["worker"].join()

    assert seen["second_finished_meanwhile"] is False
    assert not second_inside.is_set()  # the second thread found the class worked out: no second pass
    assert first.display_status == "Ready" and seen["second"].display_status == "Ready"


def test_guarding_twice_wraps_once_and_a_base_without_the_lazy_step_is_left_alone() -> None:
    assert modelrace.guard("compute")
    wrapped = model_base.Model.__new__
    assert modelrace.guard("compute")
    assert model_base.Model.__new__ is wrapped
    plain = SimpleNamespace(Model=type("Model", (), {}))
    assert modelrace.serialise_first_construction(plain) is False
    assert "__new__" not in vars(plain.Model)


def test_the_compute_and_network_clients_come_with_the_guard() -> None:
    from azure.mgmt.network._utils import model_base as network_base

    settings = Settings(arm_endpoint="https://127.0.0.1:8443")
    clients.compute_client(settings, "00000000-0000-0000-0000-000000000001")
    clients.network_client(settings, "00000000-0000-0000-0000-000000000001")
    assert getattr(model_base.Model, modelrace._MARK) is True
    assert getattr(network_base.Model, modelrace._MARK) is True


def test_a_vm_model_the_sdk_left_half_deserialised_reads_as_a_whole_one() -> None:
    # The VM's facts are read by ARM's names, which a model and a dict the SDK left in its place share:
    # an agent left a plain dict still reads Ready (read as missing, it would skip a job on a healthy VM).
    from azure.mgmt.compute.models import VirtualMachine

    from autoremediation.azure.compute_read import vm_facts

    agent = {"statuses": [{"code": "ProvisioningState/succeeded", "displayStatus": "Ready"}]}
    body = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1",
        "name": "vm-1",
        "location": "westeurope",
        "properties": {"instanceView": {"statuses": [{"code": "PowerState/running"}], "vmAgent": agent}},
    }
    whole = VirtualMachine(body)
    half = VirtualMachine(body)
    half["properties"]["instanceView"]._data["vmAgent"] = agent  # what the race leaves
    assert type(half["properties"]["instanceView"]["vmAgent"]) is dict
    assert vm_facts(half) == vm_facts(whole)
    assert (vm_facts(half).agent_ready, vm_facts(half).power_state) == (True, "running")
