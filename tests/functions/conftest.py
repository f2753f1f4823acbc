"""Fixtures for the Function App tests: the registered functions, real trigger objects, an engine.

Functions are called the way the host calls them, through ``app.get_functions()`` (once: a second call
re-registers and fails) and ``get_user_function()``, with real ``func.HttpRequest``, ``EventGridEvent``,
``CloudEvent``, ``QueueMessage`` and ``TimerRequest`` objects.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from localfleet.alerting import parse_time
from localfleet.fleetfile import load_fleet

from autoremediation import services as services_module
from autoremediation.blueprints import runtime
from autoremediation.ports import VmFacts
from autoremediation.services import Services, set_services
from autoremediation.settings import Settings
from autoremediation.store.memory_queue import InProcessQueue, ManualClock
from autoremediation.store.sqlite import SqliteJobStore
from tests.helpers.easyauth import TENANT_ID
from tests.helpers.fakes import FakeCompute, alerts_from_fleet

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-demo"
OPERATOR = "Remediation.Operator"
READER = "Remediation.Reader"


def vm_id(name: str) -> str:
    return f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"


@cache
def registered() -> dict[str, Any]:
    """The app's functions by name (``get_functions()`` may be called once per app)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def functions() -> dict[str, Callable[..., Any]]:
    return {name: f.get_user_function() for name, f in registered().items()}


def function_json(name: str) -> dict[str, Any]:
    """What the host would read for one function: its bindings."""
    data: dict[str, Any] = json.loads(registered()[name].get_function_json())
    return data


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


def oid_of(name: str) -> str:
    """A stable object id for a test identity: one person, one id."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://test.invalid/{name}"))


def principal(
    *roles: str,
    name: str | None = "alice@contoso.com",
    oid: str | None = "",
    **extra: Any,
) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` header value as App Service authentication sends it for Entra ID.

    ``oid`` empty: the object id of ``name`` (``oid_of``); None: no object id claim at all."""
    claims = [{"typ": "roles", "val": r} for r in roles]
    if name is not None:
        claims.append({"typ": "name", "val": name})
    if oid == "":
        oid = oid_of(name or "")
    if oid is not None:
        claims.append({"typ": OID_CLAIM, "val": oid})
    data = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles", **extra}
    return base64.b64encode(json.dumps(data).encode()).decode()


def signed_in(*roles: str, oid: str, name: str) -> dict[str, str]:
    """The three headers App Service authentication sends for a signed-in caller."""
    return {
        "X-MS-CLIENT-PRINCIPAL": principal(*roles, name=name, oid=oid),
        "X-MS-CLIENT-PRINCIPAL-ID": oid,
        "X-MS-CLIENT-PRINCIPAL-NAME": name,
    }


OLGA_OID = "0a0a0a0a-1111-4111-8111-000000000001"
OMAR_OID = "0b0b0b0b-2222-4222-8222-000000000002"
RITA_OID = "0c0c0c0c-3333-4333-8333-000000000003"
# Two operators and a reader: requests default to Olga, so another operator approves.
OLGA = signed_in(OPERATOR, oid=OLGA_OID, name="olga@contoso.com")
# What App Service authentication passes on for the Action Group's secure webhook token (client
# credentials of Microsoft's Action Groups application, with the app role the deployment assigns it).
ACTION_GROUP = {
    "X-MS-CLIENT-PRINCIPAL": base64.b64encode(
        json.dumps(
            {
                "auth_typ": "aad",
                "claims": [
                    {"typ": "appid", "val": "461e8683-5575-4561-ac7f-899cc907d62a"},
                    {"typ": "roles", "val": "ActionGroupsSecureWebhook"},
                    {"typ": "tid", "val": TENANT_ID},
                ],
                "name_typ": "name",
                "role_typ": "roles",
            }
        ).encode()
    ).decode()
}
OMAR = signed_in(OPERATOR, oid=OMAR_OID, name="omar@contoso.com")
RITA = signed_in(READER, oid=RITA_OID, name="rita@contoso.com")


def http(
    method: str,
    route: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    route_params: Mapping[str, str] | None = None,
) -> func.HttpRequest:
    """A request as the host hands it over, behind App Service authentication. Without ``headers``: the
    Action Group's token for the alert webhook, Olga signed in as an operator for everything else."""
    if headers is None:
        headers = ACTION_GROUP if route.startswith("alerts") else OLGA
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    return func.HttpRequest(
        method=method,
        url=f"https://app.example/api/{route}",
        headers={"Content-Type": "application/json", **headers},
        params=dict(params or {}),
        route_params=dict(route_params or {}),
        body=raw,
    )


def call(name: str, *args: Any) -> Any:
    return functions()[name](*args)


def json_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


@dataclass
class Engine:
    services: Services
    store: SqliteJobStore
    queue: InProcessQueue
    clock: ManualClock
    compute: FakeCompute

    def queued(self) -> list[str]:
        """Job ids of the messages due now, received and deleted (as a worker would)."""
        messages = self.queue.receive(max_messages=32)
        for message in messages:
            self.queue.delete(message)
        return [m.job_id for m in messages]

    def deliver(self, job_id: str, dequeue_count: int = 1) -> None:
        """Run the queue trigger for one message naming ``job_id``."""
        call("dispatch_worker", queue_message({"jobId": job_id}, dequeue_count=dequeue_count))


def queue_message(body: Any, *, dequeue_count: int = 1, message_id: str = "m-1") -> func.QueueMessage:
    """A message as the host's converter builds it: already base64-decoded, with its dequeue count."""
    from azure.functions.queue import QueueMessage

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return QueueMessage(id=message_id, body=raw, dequeue_count=dequeue_count, pop_receipt="p")


def linux_vm(name: str, **overrides: Any) -> VmFacts:
    values: dict[str, Any] = dict(
        id=vm_id(name),
        name=name,
        location="westeurope",
        os_type="linux",
        power_state="running",
        agent_ready=True,
        tags={"autoremediation": "enabled"},
    )
    values.update(overrides)
    return VmFacts(**values)


def make_engine(tmp_path: Path, settings: Settings | None = None, **parts: Any) -> Engine:
    # Azure Monitor holds the alerts of samples/ as the demo fleet declares them; the clock starts then.
    demo = load_fleet()
    clock = ManualClock(parse_time(demo.now or ""))
    parts.setdefault("alerts", alerts_from_fleet(demo))
    store = parts.pop("store", None) or SqliteJobStore(str(tmp_path / "jobs.db"))
    queue = InProcessQueue(clock)
    compute = FakeCompute()
    for name in ("vm-linux-disk", "vm-linux-locked"):
        compute.add(linux_vm(name))
    # App Service authentication on, as deployed: the principal headers are the platform's.
    settings = settings or Settings(
        sqlite_path=str(tmp_path / "jobs.db"),
        poll_seconds=15,
        platform_auth=True,
        tenant_id=TENANT_ID,
        trusted_alert_rules=tuple(r.id for r in demo.alert_rules if r.deployed),
    )
    built = Services(settings, clock=clock, store=store, queue=queue, compute=compute, **parts)
    return Engine(built, store, queue, clock, compute)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(tmp_path)
    set_services(made.services)
    runtime.reset_telemetry_flag()
    yield made
    set_services(None)
    made.store.close()


@pytest.fixture(autouse=True)
def _no_leftover_engine() -> Iterator[None]:
    yield
    services_module.set_services(None)
