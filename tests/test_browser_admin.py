"""The operator's console in a real browser: headless Debian Chromium driven by Selenium through chromedriver.

An operator logs in, finds the failed run by its id, opens its thread (a completed function-calling run and the
failed one), reads the reply, the tool call and the error, opens each run's page (steps, timeline, error) and
replays an event stream. Every page is screenshotted into var/screenshots/ (the path is printed).

The data is made through the services and the real run engine against the fake model provider; the admin needs
no Celery worker, so pytest-django's live server serves it (static files included, by Django's static handler).
Chromium comes from `make install` (Debian's `chromium` and `chromium-driver`, as root)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from files.tests.fixtures import storage_dir  # noqa: F401 - a fixture
from runs.tests.conversation import (
    FAILING_QUESTION,
    PROVIDER_ERROR,
    QUESTION,
    REPLY,
    make_conversation,
    use_fake_provider,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
PASSWORD = "operator-password-1"

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the live server's thread must see the data: commit it
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver (make install installs them as root)"),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Operator:
    """The browser, with the assertions an operator makes by looking."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob("admin-*.png"):
            old.unlink()

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def follow(self, element) -> None:
        """Click (a link, a submit button) and wait for the next page to have loaded."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.expected_conditions import staleness_of
        from selenium.webdriver.support.ui import WebDriverWait

        before = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 20).until(staleness_of(before))  # the old page is gone…
        WebDriverWait(self.driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def click(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.follow(self.driver.find_element(By.LINK_TEXT, text))

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> None:
        """A full-page screenshot (the window grows to the page's height first)."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1400, min(max(height, 1000), 6000))
        path = SCREENSHOTS / f"admin-{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        self.driver.set_window_size(1400, 1000)

    def styled(self) -> bool:
        """Django's admin CSS applied (not raw HTML): the header has its coloured background."""
        color = self.driver.execute_script(
            "return getComputedStyle(document.getElementById('header')).backgroundColor")
        return color not in ("", "rgba(0, 0, 0, 0)", "transparent")


@pytest.mark.usefixtures("storage_dir")
def test_operator_finds_a_failed_run_and_reads_its_thread(live_server, browser, project, fake_llm_server,
                                                          monkeypatch, settings, django_user_model):
    from selenium.webdriver.common.by import By

    use_fake_provider(fake_llm_server, monkeypatch, settings)
    conversation = make_conversation(project)
    completed, failed = conversation.completed, conversation.failed
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    me = Operator(browser, live_server.url)
    print(f"\nscreenshots: {SCREENSHOTS}")

    me.open("/admin/login/")
    assert me.styled(), "the admin's CSS did not load"
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    me.shot("login")
    me.follow(browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "Site administration" in me.text() and "Runs" in me.text()

    # The failed run, found by its id from the run list's search box.
    me.open("/admin/runs/run/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys(failed.public_id)
    me.follow(browser.find_element(By.CSS_SELECTOR, "#changelist-search input[type=submit]"))
    listing = me.text()
    assert failed.public_id in listing and completed.public_id not in listing and PROVIDER_ERROR in listing
    me.shot("run-search")
    me.click(failed.public_id)
    page = me.text()
    assert "server_error" in page and PROVIDER_ERROR in page and "failed" in page
    me.shot("failed-run")

    # Its thread, as a conversation: the question, the reply, the tool call, then the failed run.
    me.click(conversation.thread.public_id)
    assert me.styled()
    page = me.text()
    for text in (QUESTION, REPLY, FAILING_QUESTION):
        assert text in page
    assert page.index(QUESTION) < page.index(REPLY) < page.index(FAILING_QUESTION)
    assert 'get_weather({"city": "Paris"})' in page and '"sky": "sunny"' in page
    assert completed.public_id in page and failed.public_id in page and PROVIDER_ERROR in page
    me.shot("thread")

    # The completed run's page: its steps (the function call with arguments and output, the reply) and timeline.
    me.follow(browser.find_element(By.CSS_SELECTOR, f"#runs-group a[href$='/{completed.pk}/change/']"))
    page = me.text()
    assert "function get_weather" in page and '"city": "Paris"' in page and '"celsius": 22' in page
    assert REPLY in page and "requires_action" in page and "completed" in page
    assert f"{completed.usage['total_tokens']} tokens" in page
    me.shot("completed-run")

    me.follow(browser.find_element(By.CSS_SELECTOR, ".object-tools a[href$='/events/']"))
    page = me.text()
    assert "event: thread.run.requires_action" in page and "event: thread.run.completed" in page
    me.shot("events")

    me.open(f"/admin/runs/run/usage/?project={project.pk}")
    total = completed.usage["total_tokens"] + (failed.usage or {}).get("total_tokens", 0)
    assert "project-a gpt-4o-mini 2 1 " in me.text() and str(total) in me.text()  # 2 runs, 1 failed
    me.shot("usage")

    # A vector store with a failed file: its error, and a retry.
    from django.core.files.storage import default_storage
    from selenium.webdriver.support.ui import Select

    from files.tests.fixtures import make_file
    from retrieval.ingestion import vector_store_file_ingest
    from retrieval.models import VectorStoreFile
    from retrieval.services import vector_store_create

    settings.EMBEDDING_MODEL = ""  # keyword-only ingestion: no embedding calls needed here
    good, lost = make_file(project, b"otters", "otters.txt"), make_file(project, b"herons", "herons.txt")
    default_storage.delete(lost.storage_name)
    store = vector_store_create(project=project, name="handbook", file_ids=[good.public_id, lost.public_id])
    for vsf in VectorStoreFile.objects.filter(vector_store=store):
        vector_store_file_ingest(vsf_id=vsf.pk)
    me.open("/admin/retrieval/vectorstore/")
    row = browser.find_element(By.XPATH, f"//tr[.//th[contains(., '{store.public_id}')]]").text
    assert "handbook" in row and " 2 1 0 1 0 " in f" {row} "  # files, completed, in progress, failed, cancelled
    me.shot("vector-stores")
    me.follow(browser.find_element(By.CSS_SELECTOR, "td.field-files_failed a"))
    assert lost.public_id in me.text() and "The file's content could not be read." in me.text()
    assert good.public_id not in me.text()
    me.shot("failed-files")
    browser.find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("retry_ingestion")
    me.follow(browser.find_element(By.CSS_SELECTOR, "button[name=index]"))
    assert f"Ingestion queued again for 1 file(s): {lost.public_id}." in me.text()
    me.shot("retried")
    assert VectorStoreFile.objects.get(file=lost).status == "in_progress"
    assert all(path.stat().st_size > 10_000 for path in me.shots)
