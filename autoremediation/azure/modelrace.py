"""The first construction of each generated SDK model class, one thread at a time.

azure-mgmt-compute, azure-mgmt-network and azure-storage-queue are generated from TypeSpec: a model class
works out its fields the first time an object of it is made (``Model.__new__``). When two threads do that
at once for the same class, one can iterate the class's attributes while the other writes them; the SDK
catches the error and leaves the value a raw ``dict``, silently. A VM read then has an instance view whose
``vm_agent`` is a dict and the agent looks not Ready; an NSG could lose its rules the same way
(Azure/azure-sdk-for-python#47426; the generator's fix, microsoft/typespec#11236, is not yet in the
releases pinned here). A Function instance's first requests run on several threads at once: exactly that.

``serialise_first_construction`` wraps a generated ``Model.__new__`` so that a class not yet worked out is
worked out under one process-wide lock; a class already worked out takes no lock. A release whose model
base no longer has the lazy step is left alone.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

_lock = threading.RLock()  # re-entrant: a model's first construction may construct another
_MARK = "_autoremediation_first_new_serialised"

# The generated model bases of the SDKs the adapters deserialise responses with.
MODEL_BASES = {
    "compute": "azure.mgmt.compute._utils.model_base",
    "network": "azure.mgmt.network._utils.model_base",
    "queue": "azure.storage.queue._generated._utils.model_base",
}


def serialise_first_construction(module: Any) -> bool:
    """Guard ``module.Model``'s lazy first construction; True when it is (now or already) guarded."""
    model = getattr(module, "Model", None)
    if model is None or not isinstance(getattr(model, "_calculated", None), set):
        return False  # not the lazy model base this works around
    with _lock:
        if getattr(model, _MARK, False):
            return True
        original = model.__new__

        def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
            if f"{cls.__module__}.{cls.__qualname__}" in model._calculated:
                return original(cls, *args, **kwargs)
            with _lock:
                return original(cls, *args, **kwargs)

        model.__new__ = staticmethod(__new__)
        setattr(model, _MARK, True)
    return True


def guard(sdk: str) -> bool:
    """Guard the model base of one SDK by its key in ``MODEL_BASES``; False when that SDK has none."""
    try:
        module = importlib.import_module(MODEL_BASES[sdk])
    except ImportError:
        return False
    return serialise_first_construction(module)
