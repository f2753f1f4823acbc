"""``remediate --app URL ...``: the same commands against a deployed app's operator API.

An operator uses one tool on a laptop and against Azure. ``jobs``, ``show``, ``approve``, ``reject``,
``plan``, ``catalog`` and ``campaign`` call the app's HTTP API with an Entra access token from
azure-identity (``DefaultAzureCredential``: the Azure CLI, azd, environment, managed identity...) for the
operator API's scope: ``REMEDIATION_APP_SCOPE``, or the ``info.x-entra-scope`` the app publishes in its
anonymous ``/api/openapi`` document. App Service authentication validates the token; the caller's app
roles decide. Output is the local commands' output; ``approve`` records the approval and leaves the run to
the app's worker (like ``approve --no-wait``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from .errors import InvalidInput, InvalidTransition, NotFound, RemoteError
from .settings import Settings, parse_app_url

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

REMOTE_COMMANDS = frozenset({"jobs", "show", "approve", "reject", "plan", "catalog", "campaign"})
TIMEOUT_SECONDS = 60
RETRIES = 3
USER_AGENT = "remediate-cli"


class AppClient:
    """The operator API of one deployed app: JSON in, JSON out, errors as RemoteError / NotFound / ..."""

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential | None,
        scope: str | None,
        *,
        connection_verify: bool | str = True,
        retries: int = RETRIES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.scope = scope
        self.connection_verify = connection_verify
        self.retries = retries
        self._pipelines: dict[bool, Any] = {}

    def _pipeline(self, signed: bool) -> Any:
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import (
            BearerTokenCredentialPolicy,
            HeadersPolicy,
            RetryPolicy,
            UserAgentPolicy,
        )
        from azure.core.pipeline.transport import RequestsTransport

        if signed not in self._pipelines:
            policies: list[Any] = [
                HeadersPolicy({"Accept": "application/json"}),
                UserAgentPolicy(USER_AGENT),
                RetryPolicy(retry_total=self.retries, retry_backoff_factor=0.5),
            ]
            if signed:
                if self.credential is None or not self.scope:
                    raise InvalidInput("no credential or scope for the operator API")
                policies.append(BearerTokenCredentialPolicy(self.credential, self.scope))
            transport = RequestsTransport(connection_verify=self.connection_verify)
            self._pipelines[signed] = PipelineClient(self.base_url, policies=policies, transport=transport)
        return self._pipelines[signed]

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        signed: bool = True,
    ) -> Any:
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        url = f"{self.base_url}/api/{path}"
        request = HttpRequest(method, url, json=body, params=dict(params or {}))
        try:
            response = self._pipeline(signed).send_request(request, timeout=TIMEOUT_SECONDS)
        except ClientAuthenticationError as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RemoteError(f"cannot get an Entra token for {self.scope}: {first}") from None
        except AzureError as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RemoteError(f"cannot reach {self.base_url}: {first}") from None
        return _answer(response, method, path)


def _answer(response: Any, method: str, path: str) -> Any:
    status = int(response.status_code)
    try:
        data = response.json()
    except ValueError:
        data = None
    if 200 <= status < 300:
        if data is None:
            raise RemoteError(f"{method} /api/{path}: the app answered {status} without JSON", status=status)
        return data
    if 300 <= status < 400:
        # App Service authentication sends a caller it does not know to its sign-in page.
        raise RemoteError(
            f"the app sent you to sign in ({status}): it did not accept your token for this scope",
            status=status,
        )
    reason = data.get("error") if isinstance(data, dict) else None
    reason = str(reason or response.text()[:200] or response.reason or "no reason given").splitlines()[0]
    if status == 404:
        raise NotFound(reason)
    if status == 409:
        raise InvalidTransition(reason)
    if status in (400, 413):
        raise InvalidInput(reason)
    if status in (401, 403):
        raise RemoteError(f"the app refused you ({status}): {reason}", status=status)
    raise RemoteError(f"the app answered {status}: {reason}", status=status)


def default_credential() -> TokenCredential:
    """Whoever is signed in on this machine (Azure CLI, azd, environment, ...); never a browser pop-up."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def client_for(
    args: argparse.Namespace,
    settings: Settings,
    credential: TokenCredential | None = None,
    connection_verify: bool | str = True,
) -> AppClient:
    base_url = parse_app_url(args.app)
    if base_url is None:
        raise InvalidInput("--app needs the app's URL, like https://func-abc123.azurewebsites.net")
    client = AppClient(base_url, None, settings.app_scope, connection_verify=connection_verify)
    if not client.scope:
        document = client.call("GET", "openapi", signed=False)
        scope = (document.get("info") or {}).get("x-entra-scope") if isinstance(document, dict) else None
        if not isinstance(scope, str) or not scope.strip():
            raise InvalidInput(
                f"{base_url} does not say which Entra scope its operator API takes: set "
                "REMEDIATION_APP_SCOPE (the app registration's identifier URI followed by /.default)"
            )
        client.scope = scope.strip()
    client.credential = credential if credential is not None else default_credential()
    return client


def run_remote(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    *,
    credential: TokenCredential | None = None,
    connection_verify: bool | str = True,
) -> int:
    """Run one parsed ``remediate`` command against the app named by ``args.app``."""
    command = str(args.command)
    if command not in REMOTE_COMMANDS:
        raise InvalidInput(
            f"{command} runs on this machine only; --app works with {', '.join(sorted(REMOTE_COMMANDS))}"
        )
    client = client_for(args, settings, credential, connection_verify)
    handler: Callable[[argparse.Namespace, AppClient, TextIO], int] = _COMMANDS[command]
    return handler(args, client, out)


# -- the commands ----------------------------------------------------------------------------------


def _job_path(job_id: str, *rest: str) -> str:
    return "/".join(["remediations", quote(job_id, safe=""), *rest])


def _snake(name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name)


def _job(data: Any) -> Any:
    """The API's job document (camelCase, ``openapi.yaml``) as a Job, to print it as the local CLI does."""
    from .jobs import Job

    if not isinstance(data, dict):
        raise RemoteError("the app answered with something that is not a job")
    return Job.from_dict({_snake(str(key)): value for key, value in data.items()})


def cmd_jobs(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    from .cli_jobs import _parse_since
    from .cli_output import dump_json, short, table

    if args.limit < 0:
        raise InvalidInput(f"--limit {args.limit} must be 0 or more")
    if args.campaign:
        raise InvalidInput(
            "--campaign works on this machine only; read a campaign with: campaign --resume ID"
        )
    params = {"limit": str(args.limit)}
    if args.target:
        params["target"] = args.target
    if args.status:
        params["status"] = args.status
    if args.since:
        params["since"] = _parse_since(args.since).isoformat()
    listed = client.call("GET", "remediations", params=params)["jobs"] if args.limit else []
    if args.json:
        dump_json({"jobs": [client.call("GET", _job_path(str(j["id"]))) for j in listed]}, out)
        return 0
    rows: list[Any] = [("JOB", "STATUS", "DRY RUN", "TARGET", "REMEDIATION", "UPDATED", "LAST STEP")]
    for j in listed:
        job = _job(client.call("GET", _job_path(str(j["id"]))))
        rows.append(
            (
                job.id,
                j.get("outcomeKind") or job.status,
                "yes" if job.dry_run else "",
                short(job.target),
                job.remediation,
                job.updated_at[:19],
                job.history[-1].reason[:70],
            )
        )
    table(rows, out, styles=(None, "status"))
    return 0


def cmd_show(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    from .cli_output import dump_json, write_job

    data = client.call("GET", _job_path(args.job))
    if args.json:
        dump_json(data, out)
        return 0
    job = _job(data)  # the app redacts secret parameters
    write_job(job, job.parameters, out)
    return 0


def cmd_approve(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    job = _job(client.call("POST", _job_path(args.job, "approve"), body={"reason": args.reason}))
    name = job.review.get("name") or job.approved_by
    out.write(f"{job.id}: approved by {name}\n")
    return 0


def cmd_reject(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    job = _job(client.call("POST", _job_path(args.job, "reject"), body={"reason": args.reason}))
    out.write(f"{job.id}: {job.status} ({job.history[-1].reason})\n")
    return 0


def cmd_catalog(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    from .cli_output import dump_json, table

    entries = client.call("GET", "catalog")["remediations"]
    if args.json:
        dump_json({"remediations": entries}, out)
        return 0
    rows: list[Any] = [("ID", "RISK", "OS", "CONDITIONS", "TITLE")]
    rows += [
        (
            e["id"],
            e["risk"] + (" (approval)" if e["approvalRequired"] else ""),
            ",".join(e["os"]),
            ",".join(e["conditions"]),
            e["title"],
        )
        for e in entries
    ]
    table(rows, out)
    return 0


def cmd_plan(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    import sys

    from .cli import UsageError, read_payloads
    from .cli_output import write_plan

    data: dict[str, list[Any]] = {"signals": [], "plans": [], "notes": []}
    for name, payload in read_payloads(args.files, sys.stdin):
        try:
            answer = client.call("POST", "plan", body=payload)
        except InvalidInput as error:
            raise UsageError(f"{name}: {error}") from None
        for key in data:
            data[key] += list(answer.get(key) or [])
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
        return 0
    write_plan(data, out)
    return 0


def cmd_campaign(args: argparse.Namespace, client: AppClient, out: TextIO) -> int:
    """Start a campaign (or, with --resume ID, read one): the app's workers drive it, not this process."""
    from .campaign_cli import request_from_args, summary
    from .campaigns import COMPLETED

    if args.resume:
        status = client.call("GET", "campaigns/" + quote(args.resume, safe=""))
    else:
        status = client.call("POST", "campaigns", body=request_from_args(args))
    if args.json:
        json.dump(status, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write(summary(status) + "\n")
    if args.resume:
        return 0 if status.get("status") == COMPLETED else 1
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, AppClient, TextIO], int]] = {
    "jobs": cmd_jobs,
    "show": cmd_show,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "catalog": cmd_catalog,
    "plan": cmd_plan,
    "campaign": cmd_campaign,
}


def add_app_option(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--app",
        default=settings.app_url,
        metavar="URL",
        help="run the command against a deployed app's operator API with your Entra identity "
        f"(default: REMEDIATION_APP_URL); works with {', '.join(sorted(REMOTE_COMMANDS))}",
    )


def remote_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "app", None))
