"""The console in a real browser: headless Chromium (Debian's) driven by Selenium and chromium-driver.

The console is served by ``remediate console``'s local server, which plays App Service authentication's
part (it signs each request in as the chosen operator), over jobs in a SQLite store. Screenshots of each
page land in ``test-artifacts/console/`` for a reviewer to open.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoremediation import jobs
from autoremediation.console.local import serving
from tests.console.conftest import add_job
from tests.functions.conftest import Engine

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
PHONE = (390, 844)  # a current phone's CSS viewport
DESKTOP = (1280, 900)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are not installed (tools/ensure-system-packages.sh)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base

    def open(self, path: str = "", size: tuple[int, int] = DESKTOP) -> Any:
        self.driver.set_window_size(*size)
        self.driver.get(self.base + path)
        return self.driver

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    @property
    def text(self) -> str:
        return str(self.find("body").text)

    def submit(self, css: str) -> None:
        """Click a button that posts a form, and wait for the page it leads to (post/redirect/get)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        page = self.find("html")
        self.find(css).click()

        def left(_: Any) -> bool:
            try:
                page.is_enabled()
            except StaleElementReferenceException:
                return True
            except WebDriverException as error:
                # Chromedriver says so in other words when it asks about the node mid-navigation.
                if "does not belong to the document" in str(error):
                    return True
                raise
            return False

        WebDriverWait(self.driver, 20).until(left)


@pytest.fixture
def console_as(console_engine: Engine, browser: Any) -> Iterator[Any]:
    servers: list[Any] = []

    def start(name: str, role: str = "operator") -> Console:
        context = serving(0, name=name, role=role)
        server = context.__enter__()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((context, server, thread))
        browser.delete_all_cookies()
        return Console(browser, server.url)

    yield start
    for context, server, thread in servers:
        server.shutdown()
        thread.join(timeout=10)
        context.__exit__(None, None, None)


def test_an_operator_approves_from_a_phone_in_two_taps(console_engine: Engine, console_as: Any) -> None:
    job_id = add_job(console_engine, "k1", requested_by="alert")
    console = console_as("bob@contoso.com")

    console.open(f"/jobs/{job_id}", PHONE)  # the link a notification carries
    assert "deny-ssh-subnet" in console.text and "nsg-subnet" in console.text
    console.shot("phone-approval-request")
    width = console.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], "the page scrolls sideways on a phone"
    console.submit("button.approve")

    assert "Approved." in console.text
    console.shot("phone-approved")
    job = console_engine.store.get(job_id)
    assert job.approved_by == "local:bob@contoso.com"


def test_an_operator_rejects_with_a_reason(console_engine: Engine, console_as: Any) -> None:
    job_id = add_job(console_engine, "k1")
    console = console_as("bob@contoso.com")

    console.open()
    console.find(f"#reason-{job_id}").send_keys("maintenance window: the deny rule is intended")
    console.submit("button.reject")

    assert "Rejected." in console.text
    console.shot("rejected")
    job = console_engine.store.get(job_id)
    assert job.status == jobs.CANCELLED
    bob = "bob@contoso.com (local:bob@contoso.com)"
    assert job.history[-1].reason == f"rejected by {bob}: maintenance window: the deny rule is intended"


def test_the_requester_is_refused(console_engine: Engine, console_as: Any) -> None:
    job_id = add_job(console_engine, "k1", requested_by="local:alice@contoso.com")
    console = console_as("alice@contoso.com")

    console.open(f"/jobs/{job_id}")
    assert "another operator must approve it" in console.text
    console.submit("button.approve")

    assert "separation of duties" in console.text
    console.shot("requester-refused")
    assert console_engine.store.get(job_id).approved_by is None


def test_filters_and_a_job_timeline(console_engine: Engine, console_as: Any) -> None:
    from selenium.webdriver.support.ui import Select

    disk = add_job(
        console_engine,
        "k2",
        vm="vm-linux-disk",
        remediation="free-disk-space",
        status=jobs.SUCCEEDED,
        parameters={"mountPoint": "/var"},
        evidence={},
    )
    failed = add_job(
        console_engine,
        "k3",
        vm="vm-web-07",
        remediation="free-disk-space",
        status=jobs.FAILED,
        parameters={"mountPoint": "/var"},
        evidence={},
    )
    console = console_as("rita@contoso.com", role="reader")

    console.open("/jobs")
    console.find("#f-vm").send_keys("disk")
    Select(console.find("#f-status")).select_by_value(jobs.SUCCEEDED)
    console.submit("form.filters button")
    listed = [a.get_attribute("href") for a in console.all("ul.jobs a")]
    assert [h.rsplit("/", 1)[-1] for h in listed] == [disk]
    assert failed not in console.text
    console.shot("jobs-filtered")

    console.submit("ul.jobs a")
    timeline = [li.text for li in console.all("ol.timeline li")]
    assert len(timeline) == 5 and "all guards passed" in timeline[1]
    assert "21.5" in console.text
    assert not console.all("button.approve")  # a reader sees, never decides
    console.shot("job-timeline")


def test_keyboard_reaches_the_decision_and_every_field_has_a_label(
    console_engine: Engine, console_as: Any
) -> None:
    from selenium.webdriver.common.by import By

    add_job(console_engine, "k1")
    console = console_as("bob@contoso.com")

    console.open()
    for field in console.all("input:not([type=hidden]), select"):
        field_id = field.get_attribute("id")
        assert field_id and console.driver.find_elements(By.CSS_SELECTOR, f"label[for='{field_id}']")
    focused = []
    body = console.find("body")
    for _ in range(12):
        body.send_keys("\t") if not focused else console.driver.switch_to.active_element.send_keys("\t")
        focused.append(console.driver.switch_to.active_element.text)
    assert "Approve" in focused
    console.shot("approvals-desktop")
