"""Lineage in kedro-viz: `make viz` builds the static site, and headless Chromium draws every
registered pipeline's nodes and datasets from it."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kedro.framework.project import configure_project
from support import PROJECT_ROOT, command_environment, copy_project

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# kedro-viz reads the pipeline to show from `?pid=` (its URL parameter "pipeline_id"/"pid")
# and draws each node's and dataset's name as an SVG text of this class.
LABELS_SCRIPT = """
return [...document.querySelectorAll('svg text.pipeline-node__text')]
    .filter(label => label.getBBox().width > 0)
    .map(label => label.textContent);
"""


def make_viz(project: Path) -> subprocess.CompletedProcess:
    """The Makefile's `viz` target in ``project``, with this environment's commands and no
    attempt to install them (``-o setup``)."""
    command = [
        *("make", "--no-print-directory", "-f", str(PROJECT_ROOT / "Makefile")),
        *("-o", "setup", "viz", f"BIN={Path(sys.executable).parent}"),
    ]
    return subprocess.run(
        command, cwd=project, env=command_environment(), capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def site(small_raw_data, tmp_path_factory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    project = copy_project(tmp_path_factory.mktemp("viz_project"), small_raw_data)
    result = make_viz(project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project / "build"


@pytest.fixture(scope="module")
def registered_pipelines() -> dict[str, list[str]]:
    """Every registered pipeline with the names that should be drawn: its nodes' and its
    datasets' (parameters are hidden by kedro-viz's default filter)."""
    from llm_pipeline.pipeline_registry import register_pipelines

    configure_project("llm_pipeline")
    return {
        name: sorted(
            [node.name for node in pipeline.nodes]
            + [name for name in pipeline.datasets() if not name.startswith("params:")]
        )
        for name, pipeline in register_pipelines().items()
    }


@pytest.fixture(scope="module")
def site_url(site) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def drawn_labels(driver, expected: list[str], timeout: float = 60.0) -> list[str]:
    """The labels drawn once every expected one is there (or the last seen, at the timeout):
    the app lays the graph out some seconds after the page loads."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    seen: list[str] = []

    def all_drawn(_) -> bool:
        seen[:] = driver.execute_script(LABELS_SCRIPT)
        return set(expected) <= set(seen)

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(all_drawn)
    return sorted(seen)


def close_feature_hints(driver) -> None:
    """The first-visit tour covers part of the graph in screenshots."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, ".feature-hints__close"):
        if button.is_displayed():
            button.click()


def test_make_viz_writes_the_site_of_every_pipeline_without_telemetry(site, registered_pipelines):
    main = json.loads((site / "api/main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(registered_pipelines)
    for name in registered_pipelines:
        assert (site / "api/pipelines" / name).is_file(), name
    # .telemetry says no: the page must not load kedro's analytics script from the web.
    assert "heapanalytics" not in (site / "index.html").read_text()


def test_make_viz_fails_when_kedro_viz_cannot_build(small_raw_data, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    project = copy_project(tmp_path, small_raw_data)
    registry = project / "src/llm_pipeline/pipeline_registry.py"
    registry.write_text(registry.read_text() + "\nraise RuntimeError('broken registry')\n")
    result = make_viz(project)
    assert result.returncode != 0
    assert "kedro viz build wrote no site" in result.stdout + result.stderr


def test_every_pipeline_is_drawn_with_all_its_node_and_dataset_names(
    site_url, browser, registered_pipelines, tmp_path
):
    from selenium.webdriver.common.by import By

    for name, expected in registered_pipelines.items():
        browser.get(f"{site_url}?pid={name}")
        labels = drawn_labels(browser, expected)
        missing = sorted(set(expected) - set(labels))
        assert not missing, f"pipeline {name}: not drawn: {missing}"
        assert set(labels) == set(expected), f"pipeline {name}: drawn but not in it: " + str(
            sorted(set(labels) - set(expected))
        )
        selected = browser.find_element(By.CSS_SELECTOR, ".pipeline-list .dropdown__label")
        assert selected.text.strip() == name
        close_feature_hints(browser)
        assert browser.save_screenshot(str(tmp_path / f"viz_{name}.png"))
    assert (tmp_path / "viz___default__.png").stat().st_size > 20_000
