"""The storage clients honour the process's proxy and CA settings as ``requests`` would on every request,
though they read them once, when the client is made (``settings.http_environment``)."""

from __future__ import annotations

import pytest

from autoremediation.errors import Transient
from autoremediation.settings import http_environment
from autoremediation.store.storage_queue import StorageQueue
from tests.azurite import Azurite, unique_name
from tests.helpers.environment import clear_http_environment, closed_port

from .conftest import MakeJob, table_store


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_http_environment(monkeypatch)


class TestHttpEnvironment:
    def test_without_proxy_settings_the_client_only_stops_looking_per_request(self) -> None:
        assert http_environment("https://acct.table.core.windows.net/jobs") == {"use_env_settings": False}

    def test_the_proxy_for_the_endpoints_scheme_is_kept(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
        options = http_environment("https://acct.table.core.windows.net/jobs")
        assert options["use_env_settings"] is False
        assert options["proxies"]["https"] == "http://proxy.corp:3128"

    def test_an_endpoint_no_proxy_names_gets_no_proxy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
        monkeypatch.setenv("NO_PROXY", ".core.windows.net")
        assert "proxies" not in http_environment("https://acct.queue.core.windows.net/q")
        assert "proxies" in http_environment("https://management.azure.com/")

    def test_a_ca_bundle_from_the_environment_is_the_verification(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
        assert (
            http_environment("https://acct.table.core.windows.net/")["connection_verify"]
            == "/etc/ssl/curl.pem"
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
        assert (
            http_environment("https://acct.table.core.windows.net/")["connection_verify"]
            == "/etc/ssl/corp.pem"
        )


@pytest.mark.azurite
class TestStorageClientsThroughTheEnvironmentsProxy:
    def test_the_table_store_goes_through_the_proxy(
        self, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, make_job: MakeJob
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
        with pytest.raises(Transient, match="cannot reach"):
            table_store(azurite).create(make_job())

    def test_the_table_store_skips_the_proxy_for_a_no_proxy_host(
        self, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, make_job: MakeJob
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        store = table_store(azurite)
        job, created = store.create(make_job())
        assert created and store.get(job.id).id == job.id

    def test_the_queue_goes_through_the_proxy(
        self, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
        queue = StorageQueue(
            unique_name("q"), connection_string=azurite.connection_string, client_options={"retry_total": 0}
        )
        with pytest.raises(Transient, match="cannot reach"):
            queue.send("job-1")

    def test_the_queue_skips_the_proxy_for_a_no_proxy_host(
        self, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        queue = StorageQueue(unique_name("q"), connection_string=azurite.connection_string)
        queue.send("job-1")
        assert [m.job_id for m in queue.receive()] == ["job-1"]
