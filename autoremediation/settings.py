"""The one place that reads environment variables.

Every name here is an app setting that ``infra/`` deploys (see ``infra/modules/functionapp.bicep``).
Storage settings follow the Functions identity-based connection convention: ``REMEDIATION_STORAGE`` is
a connection string (Azurite: ``UseDevelopmentStorage=true``), or ``REMEDIATION_STORAGE__queueServiceUri``
and ``REMEDIATION_STORAGE__tableServiceUri`` with a managed identity (``REMEDIATION_STORAGE__clientId``).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInput
from .ports import Switches


def _default_catalog_dir() -> Path:
    """The catalog shipped with the code: inside the package in an installed wheel (setup.py maps
    ``remediations/`` to ``autoremediation/remediations``), next to the package in a checkout and in the
    Functions deployment, which uploads the project directory as it is."""
    package = Path(__file__).resolve().parent
    installed = package / "remediations"
    return installed if installed.is_dir() else package.parent / "remediations"


DEFAULT_CATALOG_DIR = _default_catalog_dir()

STATE_FOLDER = "autoremediation"


def user_state_dir() -> Path:
    """Where this user's local state lives (the embedded job store, the demo's fleet).

    The XDG Base Directory convention: ``$XDG_STATE_HOME/autoremediation``, by default
    ``~/.local/state/autoremediation``. ``make demo`` and later ``remediate`` commands share it, whatever
    the current directory.
    """
    # The user's own process environment, not an app setting: the folder belongs to whoever runs this.
    base = os.environ.get("XDG_STATE_HOME", "").strip()
    if not base or not Path(base).is_absolute():  # the spec says to ignore a relative path
        home = os.environ.get("HOME", "").strip() or str(Path.home())
        base = str(Path(home) / ".local" / "state")
    return Path(base) / STATE_FOLDER


def default_sqlite_path() -> str:
    return str(user_state_dir() / "jobs.db")


def http_environment(url: str) -> dict[str, Any]:
    """What the HTTP stack reads from the process environment for requests to ``url``, read once, as
    azure-core client options.

    By default (``use_env_settings``) ``requests`` looks at the whole environment on every request: the
    proxies (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) and the CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), a tenth of a storage request's CPU in a Functions
    process with its many app settings. A client whose every request goes to one service endpoint gets
    the same answer each time: these options give it that answer, resolved here with ``requests``' own
    rules, and turn the per-request look off. (``~/.netrc`` is not consulted: its Basic credentials would
    replace the storage request's signature.)
    """
    from requests.utils import get_environ_proxies

    options: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(url)
    if proxies:
        options["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"setting {name}={raw!r} is not a boolean (use true or false)")


def _number(
    env: Mapping[str, str], name: str, default: float, minimum: float = 0, maximum: float = math.inf
) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"setting {name}={raw!r} is not a number") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"; no duration or count is either
        raise InvalidInput(f"setting {name}={raw!r} is not a finite number")
    if value < minimum:
        raise InvalidInput(f"setting {name}={raw!r} must be at least {minimum:g}")
    if value > maximum:
        raise InvalidInput(f"setting {name}={raw!r} must be at most {maximum:g}")
    return value


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.replace(";", ",").split(",") if item.strip())


def _arm_limits(env: Mapping[str, str], name: str) -> str:
    """``arm``, ``off`` or ``reads=250/25,writes=200/10,deletes=200/10`` (bucket size / refill per second)."""
    raw = (env.get(name) or "").strip().lower()
    if raw in {"", "arm", "off"}:
        return raw
    for part in raw.split(","):
        kind, _, rate = part.strip().partition("=")
        size, _, refill = rate.partition("/")
        try:
            ok = kind in {"reads", "writes", "deletes"} and float(size) >= 1 and float(refill) > 0
        except ValueError:
            ok = False
        if not ok or not all(math.isfinite(float(v)) for v in (size, refill)):
            raise InvalidInput(
                f"setting {name}={env.get(name)!r}: write arm, off, or kind=size/refill pairs like "
                "reads=250/25,writes=200/10,deletes=200/10"
            )
    return raw


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in choices:
        raise InvalidInput(f"setting {name}={value!r} must be one of {', '.join(choices)}")
    return value


# Management sources that would make "restore management access" open SSH/RDP to (nearly) anyone.
# Words: any address, the public internet, and every Azure public address (any tenant's VM).
_TOO_BROAD_WORDS = frozenset({"*", "any", "internet", "azurecloud"})
# The widest prefix accepted outside private address space: a /16 (65,536 IPv4 addresses) or an IPv6
# /48 (one site). Private-use ranges (RFC 1918, shared 100.64/10, IPv6 ULA) may be as wide as they are.
MIN_PUBLIC_PREFIX = {4: 16, 6: 48}
_PRIVATE_SPACE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def check_management_sources(
    sources: tuple[str, ...] | list[str], setting: str = "REMEDIATION_MANAGEMENT_SOURCES"
) -> tuple[str, ...]:
    """Refuse sources that defeat the purpose of a management allow-list; name the setting.

    Refused: ``*``/``Any``, ``Internet``, ``AzureCloud`` (and its regional forms), ``0.0.0.0/0``, ``::/0``
    and any public prefix wider than ``MIN_PUBLIC_PREFIX`` (/16 IPv4, /48 IPv6).
    """
    for source in sources:
        text = source.strip()
        word = text.lower()
        if word in _TOO_BROAD_WORDS or word.startswith("azurecloud.") or word.endswith("/0"):
            raise InvalidInput(
                f"setting {setting}: {text!r} would open SSH/RDP to far more than the management network; "
                "name the management CIDRs or VirtualNetwork"
            )
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # a service tag or junk: the detector checks the form
        private = any(net.version == p.version and net.subnet_of(p) for p in _PRIVATE_SPACE)  # type: ignore[arg-type]
        if not private and net.prefixlen < MIN_PUBLIC_PREFIX[net.version]:
            raise InvalidInput(
                f"setting {setting}: {text!r} is too broad for a management source (public prefixes must be "
                f"/{MIN_PUBLIC_PREFIX[net.version]} or narrower)"
            )
    return tuple(sources)


# What a failed or timed-out job does to its alert's user state (a comment is always added).
ALERT_FAILURE_STATES = ("unchanged", "new", "acknowledged", "closed")


def _trusted_rules(env: Mapping[str, str]) -> tuple[str, ...]:
    from .provenance import trusted_rule_problem

    rules = _list(env, "REMEDIATION_TRUSTED_ALERT_RULES")
    for rule in rules:
        problem = trusted_rule_problem(rule)
        if problem is not None:
            raise InvalidInput(f"setting {problem}")
    return rules


def parse_app_url(raw: str | None) -> str | None:
    """A deployed app's base URL, https only: the CLI sends it an Entra token."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput(f"setting REMEDIATION_APP_URL={raw!r} must be the app's https:// URL")
    return value


@dataclass(frozen=True)
class Settings:
    job_store: str = "sqlite"
    sqlite_path: str = field(default_factory=default_sqlite_path)
    storage_connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    storage_client_id: str | None = None
    blob_service_uri: str | None = None
    diagnostics_container: str = "diagnostics"
    queue_name: str = "remediation-jobs"
    table_prefix: str = "remediation"
    catalog_dir: str = str(DEFAULT_CATALOG_DIR)
    opt_in_tag: str = "autoremediation=enabled"
    quarantine_tag: str = "autoremediation-quarantine"
    allowed_scopes: tuple[str, ...] = ()
    kill_switch: bool = False
    dry_run: bool = False
    run_command_mode: str = "managed"
    management_sources: tuple[str, ...] = ("VirtualNetwork",)
    service_tags_file: str | None = None  # Microsoft's published Service Tags JSON, deployed with the app
    approval_ttl_minutes: float = 60
    breaker_threshold: int = 3
    breaker_window_minutes: float = 60
    breaker_open_minutes: float = 60
    lease_seconds: float = 900
    poll_seconds: float = 15
    run_deadline_minutes: float = 90
    retention_days: float = 90
    arm_endpoint: str = "https://management.azure.com"
    # ARM's request budget per subscription: "" (ARM's documented limits on Azure, none on the local
    # fleet), "arm", "off", or "reads=250/25,writes=200/10,deletes=200/10" (size / refill per second).
    arm_limits: str = ""
    arm_ca_bundle: str | None = None
    managed_identity_client_id: str | None = None
    subscription_id: str | None = None
    operator_role: str = "Remediation.Operator"
    reader_role: str = "Remediation.Reader"
    appinsights_connection_string: str | None = None
    trusted_alert_rules: tuple[str, ...] = ()
    alert_max_age_minutes: float = 30
    max_jobs_per_signal: int = 20
    alert_failure_state: str = "unchanged"
    # Webhook URLs carry their token: never shown (repr=False); see notify.channels for the format.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    notify_on_success: bool = False
    notify_timeout_seconds: float = 10
    # Set by the platform, not by infra/: App Service authentication fronts the app and vouches for the
    # X-MS-CLIENT-PRINCIPAL headers (it strips any a client sends).
    platform_auth: bool = False
    # The deployment's Entra tenant: an alert webhook token must be issued in it (``tid`` claim).
    tenant_id: str = ""
    # Development only: with platform authentication off, let unauthenticated callers use the operator API.
    allow_unauthenticated_operators: bool = False
    # The remote CLI: a deployed app's URL; the Entra scope its operator API accepts (the app publishes it).
    app_url: str | None = None
    app_scope: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def arm_is_local(self) -> bool:
        """ARM is the local fleet (a loopback endpoint), not Azure: no real credential, no ARM budget."""
        return (urlsplit(self.arm_endpoint).hostname or "") in {"127.0.0.1", "localhost", "::1"}

    @property
    def arm_budget(self) -> dict[str, tuple[float, float]] | None:
        """The request budget to keep per subscription, as kind -> (bucket size, refill per second);
        None for no budget (the local fleet, unless it is told to throttle like ARM)."""
        arm = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}
        if self.arm_limits == "off" or (self.arm_limits == "" and self.arm_is_local):
            return None
        if self.arm_limits in {"", "arm"}:
            return arm
        limits = {}
        for part in self.arm_limits.split(","):
            kind, _, rate = part.strip().partition("=")
            size, _, refill = rate.partition("/")
            limits[kind] = (float(size), float(refill))
        return limits

    @property
    def opt_in(self) -> tuple[str, str]:
        """The opt-in tag as (name, value); a bare name means any value."""
        name, _, value = self.opt_in_tag.partition("=")
        return name.strip(), value.strip()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        store = "REMEDIATION_STORAGE"
        return cls(
            job_store=_choice(env, "REMEDIATION_JOB_STORE", "sqlite", ("sqlite", "table")),
            sqlite_path=env.get("REMEDIATION_SQLITE_PATH") or default_sqlite_path(),
            storage_connection_string=env.get(store) or None,
            queue_service_uri=env.get(f"{store}__queueServiceUri") or None,
            table_service_uri=env.get(f"{store}__tableServiceUri") or None,
            storage_client_id=env.get(f"{store}__clientId") or None,
            blob_service_uri=env.get(f"{store}__blobServiceUri") or None,
            diagnostics_container=env.get("REMEDIATION_DIAGNOSTICS_CONTAINER") or cls.diagnostics_container,
            queue_name=env.get("REMEDIATION_QUEUE_NAME", cls.queue_name),
            table_prefix=env.get("REMEDIATION_TABLE_PREFIX", cls.table_prefix),
            catalog_dir=env.get("REMEDIATION_CATALOG_DIR", cls.catalog_dir),
            opt_in_tag=env.get("REMEDIATION_OPT_IN_TAG", cls.opt_in_tag),
            quarantine_tag=env.get("REMEDIATION_QUARANTINE_TAG", cls.quarantine_tag),
            allowed_scopes=_list(env, "REMEDIATION_ALLOWED_SCOPES"),
            kill_switch=_flag(env, "REMEDIATION_KILL_SWITCH", False),
            dry_run=_flag(env, "REMEDIATION_DRY_RUN", False),
            run_command_mode=_choice(env, "REMEDIATION_RUN_COMMAND_MODE", "managed", ("managed", "action")),
            management_sources=check_management_sources(
                _list(env, "REMEDIATION_MANAGEMENT_SOURCES", cls.management_sources)
            ),
            service_tags_file=env.get("REMEDIATION_SERVICE_TAGS_FILE", "").strip() or None,
            approval_ttl_minutes=_number(env, "REMEDIATION_APPROVAL_TTL_MINUTES", 60, 1),
            breaker_threshold=int(_number(env, "REMEDIATION_BREAKER_THRESHOLD", 3, 1)),
            breaker_window_minutes=_number(env, "REMEDIATION_BREAKER_WINDOW_MINUTES", 60, 1),
            breaker_open_minutes=_number(env, "REMEDIATION_BREAKER_OPEN_MINUTES", 60, 1),
            lease_seconds=_number(env, "REMEDIATION_LEASE_SECONDS", 900, 30),
            # At most an hour: it is also how long a job waits for a busy VM's lease before it looks again.
            poll_seconds=_number(env, "REMEDIATION_POLL_SECONDS", 15, 0, 3600),
            run_deadline_minutes=_number(env, "REMEDIATION_RUN_DEADLINE_MINUTES", 90, 1),
            retention_days=_number(env, "REMEDIATION_RETENTION_DAYS", 90, 1),
            arm_endpoint=env.get("REMEDIATION_ARM_ENDPOINT", cls.arm_endpoint).rstrip("/"),
            arm_limits=_arm_limits(env, "REMEDIATION_ARM_LIMITS"),
            arm_ca_bundle=env.get("REMEDIATION_ARM_CA_BUNDLE") or None,
            managed_identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            subscription_id=env.get("AZURE_SUBSCRIPTION_ID") or None,
            operator_role=env.get("REMEDIATION_OPERATOR_ROLE", cls.operator_role),
            reader_role=env.get("REMEDIATION_READER_ROLE", cls.reader_role),
            appinsights_connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None,
            trusted_alert_rules=_trusted_rules(env),
            alert_max_age_minutes=_number(env, "REMEDIATION_ALERT_MAX_AGE_MINUTES", 30, 1),
            max_jobs_per_signal=int(_number(env, "REMEDIATION_MAX_JOBS_PER_SIGNAL", 20, 1)),
            alert_failure_state=_choice(
                env, "REMEDIATION_ALERT_FAILURE_STATE", "unchanged", ALERT_FAILURE_STATES
            ),
            notify_urls=_notify_urls(env),
            notify_on_success=_flag(env, "REMEDIATION_NOTIFY_ON_SUCCESS", False),
            notify_timeout_seconds=_number(env, "REMEDIATION_NOTIFY_TIMEOUT_SECONDS", 10, 1),
            platform_auth=_flag(env, "WEBSITE_AUTH_ENABLED", False),
            tenant_id=env.get("AZURE_TENANT_ID", "").strip(),
            allow_unauthenticated_operators=_flag(env, "REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS", False),
            app_url=parse_app_url(env.get("REMEDIATION_APP_URL")),
            app_scope=(env.get("REMEDIATION_APP_SCOPE") or "").strip() or None,
        )


def _notify_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """Checked here, so a malformed entry stops the app at start with a message naming its position."""
    from .notify.channels import parse_channels

    urls = _list(env, "REMEDIATION_NOTIFY_URLS")
    parse_channels(urls)
    return urls


class EnvironmentSwitches:
    """The kill switch and dry run, read afresh from the environment (the app settings) on every call.

    The runner asks right before each outside action (NSG write, run command PUT), so a job that waited
    in ``dispatching`` while an operator threw the switch never acts. On Azure, changing an app setting
    restarts the app: the worker that next picks the job up reads the new value here.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env

    def switches(self) -> Switches:
        env = os.environ if self._env is None else self._env
        return Switches(
            kill_switch=_flag(env, "REMEDIATION_KILL_SWITCH", False),
            dry_run=_flag(env, "REMEDIATION_DRY_RUN", False),
        )


# The app settings this module reads: infra tests check that the Bicep sets each of them.
SETTING_NAMES = (
    "REMEDIATION_JOB_STORE",
    "REMEDIATION_SQLITE_PATH",
    "REMEDIATION_STORAGE",
    "REMEDIATION_STORAGE__queueServiceUri",
    "REMEDIATION_STORAGE__tableServiceUri",
    "REMEDIATION_STORAGE__clientId",
    "REMEDIATION_STORAGE__blobServiceUri",
    "REMEDIATION_DIAGNOSTICS_CONTAINER",
    "REMEDIATION_QUEUE_NAME",
    "REMEDIATION_TABLE_PREFIX",
    "REMEDIATION_CATALOG_DIR",
    "REMEDIATION_OPT_IN_TAG",
    "REMEDIATION_QUARANTINE_TAG",
    "REMEDIATION_ALLOWED_SCOPES",
    "REMEDIATION_KILL_SWITCH",
    "REMEDIATION_DRY_RUN",
    "REMEDIATION_RUN_COMMAND_MODE",
    "REMEDIATION_MANAGEMENT_SOURCES",
    "REMEDIATION_SERVICE_TAGS_FILE",
    "REMEDIATION_APPROVAL_TTL_MINUTES",
    "REMEDIATION_BREAKER_THRESHOLD",
    "REMEDIATION_BREAKER_WINDOW_MINUTES",
    "REMEDIATION_BREAKER_OPEN_MINUTES",
    "REMEDIATION_LEASE_SECONDS",
    "REMEDIATION_POLL_SECONDS",
    "REMEDIATION_RUN_DEADLINE_MINUTES",
    "REMEDIATION_RETENTION_DAYS",
    "REMEDIATION_ARM_ENDPOINT",
    "REMEDIATION_ARM_CA_BUNDLE",
    "REMEDIATION_ARM_LIMITS",
    "AZURE_CLIENT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_TENANT_ID",
    "REMEDIATION_OPERATOR_ROLE",
    "REMEDIATION_READER_ROLE",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "REMEDIATION_TRUSTED_ALERT_RULES",
    "REMEDIATION_ALERT_MAX_AGE_MINUTES",
    "REMEDIATION_MAX_JOBS_PER_SIGNAL",
    "REMEDIATION_ALERT_FAILURE_STATE",
    "REMEDIATION_NOTIFY_URLS",
    "REMEDIATION_NOTIFY_ON_SUCCESS",
    "REMEDIATION_NOTIFY_TIMEOUT_SECONDS",
    "WEBSITE_AUTH_ENABLED",
    "REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS",
    "REMEDIATION_APP_URL",
    "REMEDIATION_APP_SCOPE",
)

# Settings the platform sets for the app (App Service authentication), never a deployment's choice.
PLATFORM_SETTINGS = ("WEBSITE_AUTH_ENABLED",)

# Settings that only make sense off Azure (a laptop, tests, the demo): the Bicep does not deploy them.
LOCAL_ONLY_SETTINGS = (
    "REMEDIATION_SQLITE_PATH",  # the deployed app uses Table Storage
    "REMEDIATION_STORAGE",  # a connection string; Azure uses the identity-based __*ServiceUri form
    "REMEDIATION_ARM_CA_BUNDLE",  # only the local ARM emulator has a private CA
    "REMEDIATION_ARM_LIMITS",  # Azure: ARM's documented limits, the default; tuned for the emulator
    "REMEDIATION_CATALOG_DIR",  # deployed with the app at its default place
    "REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS",  # development only: never on a deployed app
    "REMEDIATION_APP_URL",  # read by the remote CLI on an operator's machine
)
