"""Settings read from app settings: every name reaches its field, every bound holds, bad values are named."""

from __future__ import annotations

import pytest

from autoremediation.errors import InvalidInput
from autoremediation.settings import SETTING_NAMES, Settings

# One distinct value per text setting, so a setting read under the wrong name shows up as a wrong field.
TEXT_SETTINGS = {
    "REMEDIATION_SQLITE_PATH": ("sqlite_path", "/data/jobs.db"),
    "REMEDIATION_STORAGE": ("storage_connection_string", "UseDevelopmentStorage=true"),
    "REMEDIATION_STORAGE__queueServiceUri": ("queue_service_uri", "https://acct.queue.example/"),
    "REMEDIATION_STORAGE__tableServiceUri": ("table_service_uri", "https://acct.table.example/"),
    "REMEDIATION_STORAGE__clientId": ("storage_client_id", "storage-client"),
    "REMEDIATION_QUEUE_NAME": ("queue_name", "jobs-q"),
    "REMEDIATION_TABLE_PREFIX": ("table_prefix", "rem2"),
    "REMEDIATION_CATALOG_DIR": ("catalog_dir", "/opt/catalog"),
    "REMEDIATION_OPT_IN_TAG": ("opt_in_tag", "selfheal=yes"),
    "REMEDIATION_QUARANTINE_TAG": ("quarantine_tag", "hands-off"),
    "REMEDIATION_ARM_CA_BUNDLE": ("arm_ca_bundle", "/etc/ca.pem"),
    "AZURE_CLIENT_ID": ("managed_identity_client_id", "mi-client"),
    "AZURE_SUBSCRIPTION_ID": ("subscription_id", "sub-1"),
    "REMEDIATION_OPERATOR_ROLE": ("operator_role", "Ops.Write"),
    "REMEDIATION_READER_ROLE": ("reader_role", "Ops.Read"),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": ("appinsights_connection_string", "InstrumentationKey=k"),
}

# (setting, field, smallest accepted value, a value just below it)
NUMBER_SETTINGS = [
    ("REMEDIATION_APPROVAL_TTL_MINUTES", "approval_ttl_minutes", 1, "0.5"),
    ("REMEDIATION_BREAKER_THRESHOLD", "breaker_threshold", 1, "0.5"),
    ("REMEDIATION_BREAKER_WINDOW_MINUTES", "breaker_window_minutes", 1, "0.5"),
    ("REMEDIATION_BREAKER_OPEN_MINUTES", "breaker_open_minutes", 1, "0.5"),
    ("REMEDIATION_LEASE_SECONDS", "lease_seconds", 30, "29.5"),
    ("REMEDIATION_POLL_SECONDS", "poll_seconds", 0, "-0.5"),
    ("REMEDIATION_RUN_DEADLINE_MINUTES", "run_deadline_minutes", 1, "0.5"),
    ("REMEDIATION_RETENTION_DAYS", "retention_days", 1, "0.5"),
]


def test_no_app_settings_means_the_documented_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({}).opt_in == ("autoremediation", "enabled")


def test_from_env_without_a_mapping_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATION_QUEUE_NAME", "from-process")
    assert Settings.from_env().queue_name == "from-process"
    # An explicit mapping wins over the process environment entirely.
    assert Settings.from_env({}).queue_name == "remediation-jobs"


@pytest.mark.parametrize(("name", "expected"), list(TEXT_SETTINGS.items()), ids=list(TEXT_SETTINGS))
def test_each_text_setting_reaches_its_own_field(name: str, expected: tuple[str, str]) -> None:
    field_name, value = expected
    settings = Settings.from_env({name: value})
    assert getattr(settings, field_name) == value
    # ...and only that field: the rest keep their defaults.
    untouched = {f: getattr(Settings(), f) for f, _ in TEXT_SETTINGS.values() if f != field_name}
    assert {f: getattr(settings, f) for f in untouched} == untouched


@pytest.mark.parametrize(
    "name",
    [
        "REMEDIATION_STORAGE",
        "REMEDIATION_STORAGE__queueServiceUri",
        "REMEDIATION_STORAGE__tableServiceUri",
        "REMEDIATION_STORAGE__clientId",
        "REMEDIATION_ARM_CA_BUNDLE",
        "AZURE_CLIENT_ID",
        "AZURE_SUBSCRIPTION_ID",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ],
)
def test_an_empty_optional_setting_counts_as_unset(name: str) -> None:
    # The Bicep deploys some settings empty; an empty connection string must not look configured.
    assert getattr(Settings.from_env({name: ""}), TEXT_SETTINGS[name][0]) is None


def test_every_text_setting_is_a_documented_app_setting() -> None:
    assert set(TEXT_SETTINGS) <= set(SETTING_NAMES)


@pytest.mark.parametrize(("name", "field_name", "minimum", "below"), NUMBER_SETTINGS)
def test_number_settings_accept_their_minimum_and_name_the_setting_below_it(
    name: str, field_name: str, minimum: int, below: str
) -> None:
    assert getattr(Settings.from_env({name: str(minimum)}), field_name) == minimum
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({name: below})
    assert str(caught.value) == f"setting {name}={below!r} must be at least {minimum}"


@pytest.mark.parametrize(("name", "field_name", "_minimum", "_below"), NUMBER_SETTINGS)
def test_number_settings_read_their_own_name(name: str, field_name: str, _minimum: int, _below: str) -> None:
    settings = Settings.from_env({name: "  1234  "})
    assert getattr(settings, field_name) == 1234
    others = {f for _, f, _, _ in NUMBER_SETTINGS if f != field_name}
    assert all(getattr(settings, f) == getattr(Settings(), f) for f in others)


def test_number_defaults_hold_when_the_setting_is_blank() -> None:
    blank = {name: "   " for name, *_ in NUMBER_SETTINGS}
    settings = Settings.from_env(blank)
    assert (settings.approval_ttl_minutes, settings.breaker_threshold, settings.lease_seconds) == (60, 3, 900)
    assert (settings.poll_seconds, settings.run_deadline_minutes, settings.retention_days) == (15, 90, 90)
    assert (settings.breaker_window_minutes, settings.breaker_open_minutes) == (60, 60)


def test_a_number_setting_that_is_not_a_number_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"REMEDIATION_LEASE_SECONDS": "ten"})
    assert str(caught.value) == "setting REMEDIATION_LEASE_SECONDS='ten' is not a number"


def test_breaker_threshold_is_a_whole_number_of_failures() -> None:
    assert Settings.from_env({"REMEDIATION_BREAKER_THRESHOLD": "4.7"}).breaker_threshold == 4


@pytest.mark.parametrize(
    ("name", "field_name"), [("REMEDIATION_KILL_SWITCH", "kill_switch"), ("REMEDIATION_DRY_RUN", "dry_run")]
)
@pytest.mark.parametrize("spelling", ["1", "true", "yes", "on", " TRUE ", "On"])
def test_boolean_settings_understand_every_true_spelling(name: str, field_name: str, spelling: str) -> None:
    settings = Settings.from_env({name: spelling})
    assert getattr(settings, field_name) is True
    other = "dry_run" if field_name == "kill_switch" else "kill_switch"
    assert getattr(settings, other) is False


@pytest.mark.parametrize("name", ["REMEDIATION_KILL_SWITCH", "REMEDIATION_DRY_RUN"])
@pytest.mark.parametrize("spelling", ["0", "false", "no", "off", "", " OFF "])
def test_boolean_settings_understand_every_false_spelling(name: str, spelling: str) -> None:
    settings = Settings.from_env({name: spelling})
    assert settings.kill_switch is False
    assert settings.dry_run is False


def test_a_boolean_setting_that_is_neither_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"REMEDIATION_KILL_SWITCH": "maybe"})
    assert str(caught.value) == (
        "setting REMEDIATION_KILL_SWITCH='maybe' is not a boolean (use true or false)"
    )


@pytest.mark.parametrize(
    ("name", "field_name", "value", "expected"),
    [
        ("REMEDIATION_JOB_STORE", "job_store", " TABLE ", "table"),
        ("REMEDIATION_JOB_STORE", "job_store", "sqlite", "sqlite"),
        ("REMEDIATION_JOB_STORE", "job_store", "  ", "sqlite"),
        ("REMEDIATION_RUN_COMMAND_MODE", "run_command_mode", "Action", "action"),
        ("REMEDIATION_RUN_COMMAND_MODE", "run_command_mode", "managed", "managed"),
        ("REMEDIATION_RUN_COMMAND_MODE", "run_command_mode", "", "managed"),
    ],
)
def test_choice_settings_are_case_insensitive_and_blank_means_default(
    name: str, field_name: str, value: str, expected: str
) -> None:
    assert getattr(Settings.from_env({name: value}), field_name) == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "REMEDIATION_JOB_STORE",
            "Cosmos",
            "setting REMEDIATION_JOB_STORE='cosmos' must be one of sqlite, table",
        ),
        (
            "REMEDIATION_RUN_COMMAND_MODE",
            "classic",
            "setting REMEDIATION_RUN_COMMAND_MODE='classic' must be one of managed, action",
        ),
    ],
)
def test_an_unknown_choice_lists_the_allowed_ones(name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == message


def test_list_settings_split_on_commas_and_semicolons_and_drop_blanks() -> None:
    settings = Settings.from_env(
        {
            "REMEDIATION_ALLOWED_SCOPES": " /subscriptions/a ; /subscriptions/b,, ,/subscriptions/c",
            "REMEDIATION_MANAGEMENT_SOURCES": "10.0.0.0/8;AzureBastion",
        }
    )
    assert settings.allowed_scopes == ("/subscriptions/a", "/subscriptions/b", "/subscriptions/c")
    assert settings.management_sources == ("10.0.0.0/8", "AzureBastion")


def test_list_settings_default_when_unset_and_empty_when_set_blank() -> None:
    assert Settings.from_env({}).management_sources == ("VirtualNetwork",)
    assert Settings.from_env({}).allowed_scopes == ()
    # Set but blank is an explicit "none": no management source is opened.
    assert Settings.from_env({"REMEDIATION_MANAGEMENT_SOURCES": ""}).management_sources == ()


def test_arm_endpoint_loses_its_trailing_slash() -> None:
    settings = Settings.from_env({"REMEDIATION_ARM_ENDPOINT": "https://arm.local:8443/"})
    assert settings.arm_endpoint == "https://arm.local:8443"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("selfheal = yes ", ("selfheal", "yes")), ("selfheal", ("selfheal", "")), ("a=b=c", ("a", "b=c"))],
)
def test_opt_in_tag_splits_at_the_first_equals(tag: str, expected: tuple[str, str]) -> None:
    assert Settings.from_env({"REMEDIATION_OPT_IN_TAG": tag}).opt_in == expected


def test_nan_and_infinity_are_refused_with_the_setting_named() -> None:
    import pytest as _pytest

    from autoremediation.errors import InvalidInput as _InvalidInput
    from autoremediation.settings import Settings as _Settings

    for name in (
        "REMEDIATION_BREAKER_THRESHOLD",
        "REMEDIATION_LEASE_SECONDS",
        "REMEDIATION_APPROVAL_TTL_MINUTES",
    ):
        for raw in ("nan", "inf", "-inf", "1e400"):
            with _pytest.raises(_InvalidInput, match=f"setting {name}=.* is not a finite number"):
                _Settings.from_env({name: raw})


def test_only_a_loopback_endpoint_is_the_local_fleet() -> None:
    from autoremediation.settings import Settings as _Settings

    for url in ("https://127.0.0.1:8443", "https://localhost:1", "https://[::1]:9"):
        assert _Settings(arm_endpoint=url).arm_is_local
    for url in ("https://management.azure.com", "https://127.0.0.1.example.com", "https://10.0.0.1"):
        assert not _Settings(arm_endpoint=url).arm_is_local


def test_the_poll_interval_is_at_most_an_hour() -> None:
    # It is also how long a job waits for a busy VM's lease before it looks again: longer would leave a
    # job silent for hours (and past a Storage Queue message's 7-day delay).
    assert Settings.from_env({"REMEDIATION_POLL_SECONDS": "3600"}).poll_seconds == 3600
    with pytest.raises(InvalidInput, match=r"REMEDIATION_POLL_SECONDS='3600\.5' must be at most 3600"):
        Settings.from_env({"REMEDIATION_POLL_SECONDS": "3600.5"})
