"""Lineage in kedro-viz: `make viz` builds the static site, and headless Chromium draws every
registered pipeline from it: its stages as collapsed groups at first, their nodes and datasets
once the groups are expanded."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.project import configure_project
from kedro.pipeline import Pipeline
from support import PROJECT_ROOT, command_environment, copy_project

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# kedro-viz reads the pipeline to show from `?pid=` (its URL parameter "pipeline_id"/"pid"),
# and whether to open every group from `expandAllPipelines=`; it draws each group's, node's
# and dataset's name as an SVG text of this class, a node's without its namespace.
LABELS_SCRIPT = """
return [...document.querySelectorAll('svg text.pipeline-node__text')]
    .filter(label => label.getBBox().width > 0)
    .map(label => label.textContent);
"""
GROUPS_SCRIPT = """
return [...document.querySelectorAll('svg .pipeline-node--modularPipeline')]
    .map(group => group.querySelector('text.pipeline-node__text').textContent);
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
def registered_pipelines() -> dict[str, Pipeline]:
    from llm_pipeline.pipeline_registry import register_pipelines

    configure_project("llm_pipeline")
    return register_pipelines()


def expanded_labels(pipeline: Pipeline) -> list[str]:
    """The names drawn with every group open: the nodes' (without their namespace) and the
    datasets' (parameters are hidden by kedro-viz's default filter)."""
    return sorted(
        [node.name.removeprefix(f"{node.namespace}.") for node in pipeline.nodes]
        + [name for name in pipeline.datasets() if not name.startswith("params:")]
    )


def collapsed_labels(pipeline: Pipeline) -> list[str]:
    """The names drawn with every group closed: one per stage (namespace), and the datasets
    that go into or out of the pipeline or from one stage to another."""
    producer = {output: node.namespace for node in pipeline.nodes for output in node.outputs}
    between_stages = {
        name
        for node in pipeline.nodes
        for name in node.inputs
        if name in producer and producer[name] != node.namespace
    }
    datasets = (pipeline.inputs() | pipeline.outputs() | between_stages) - {"parameters"}
    return sorted(
        {node.namespace for node in pipeline.nodes}
        | {name for name in datasets if not name.startswith("params:")}
    )


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


def open_first_visit(driver, site_url: str, query: str) -> None:
    """The page at ``query`` as on a first visit: kedro-viz keeps its settings (among them
    whether groups are expanded) in the browser's local storage."""
    origin = site_url.rstrip("/")
    driver.execute_cdp_cmd(
        "Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "local_storage"}
    )
    driver.get(f"{site_url}?{query}")


def settled(driver, read, done, timeout: float) -> Any:
    """What ``read()`` gives once ``done`` holds of it, or the last it gave, at the timeout."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    seen = None

    def check(_) -> bool:
        nonlocal seen
        seen = read()
        return done(seen)

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(check)
    return seen


def drawn_labels(driver, expected: list[str], timeout: float = 60.0) -> list[str]:
    """The labels drawn once they are exactly the expected ones (or the last seen, at the
    timeout): the app lays the graph out some seconds after the page loads, and may draw
    another pipeline (a superset) for a moment before it turns to the one asked for."""
    labels = settled(
        driver,
        lambda: driver.execute_script(LABELS_SCRIPT),
        lambda seen: set(seen) == set(expected),
        timeout,
    )
    return sorted(labels)


def selected_pipeline(driver, name: str, timeout: float = 20.0) -> str:
    """The pipeline the dropdown names, once it is ``name`` (or the last seen, at the timeout):
    on a loaded machine the app had drawn the pipeline asked for while its dropdown still named
    the default one (a run of the suite on three workers, 2026-12-05)."""
    from selenium.webdriver.common.by import By

    return settled(
        driver,
        lambda: driver.find_element(
            By.CSS_SELECTOR, ".pipeline-list .dropdown__label"
        ).text.strip(),
        lambda label: label == name,
        timeout,
    )


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


def open_and_assert_drawn(
    browser, site_url: str, query: str, expected: list[str], what: str
) -> list[str]:
    """Open ``query`` as on a first visit and assert that exactly ``expected`` is drawn. Opened
    once more if the first page load ends drawing another pipeline: in one fresh-clone CI run
    of several, kedro-viz kept drawing the default pipeline for a ``pid=align`` URL through a
    whole minute, where every other run drew it within seconds (the cause, in the app, was not
    found). A pipeline that is never drawn still fails."""
    for attempt in (1, 2):
        open_first_visit(browser, site_url, query)
        labels = drawn_labels(browser, expected, timeout=45.0)
        if set(labels) == set(expected):
            break
        if attempt == 1:
            logging.getLogger(__name__).warning("%s: drawn %s; loading it again", what, labels)
    missing = sorted(set(expected) - set(labels))
    assert not missing, f"{what}: not drawn: {missing}"
    extra = sorted(set(labels) - set(expected))
    assert not extra, f"{what}: drawn but not in it: {extra}"
    return labels


def test_every_pipeline_opens_with_its_stages_as_collapsed_groups(
    site_url, browser, registered_pipelines, tmp_path
):
    from selenium.webdriver.common.by import By

    from llm_pipeline.pipeline_registry import STAGES

    groups = {}
    for name, pipeline in registered_pipelines.items():
        open_and_assert_drawn(
            browser,
            site_url,
            f"pid={name}",
            collapsed_labels(pipeline),
            f"pipeline {name}, collapsed",
        )
        groups[name] = sorted(browser.execute_script(GROUPS_SCRIPT))
        assert groups[name] == sorted({node.namespace for node in pipeline.nodes}), name
        # Every node is inside its stage's group: none is drawn on its own.
        assert not browser.find_elements(By.CSS_SELECTOR, "svg .pipeline-node--task"), name
        assert selected_pipeline(browser, name) == name
        close_feature_hints(browser)
        assert browser.save_screenshot(str(tmp_path / f"viz_{name}.png"))
    # The whole run is drawn as its stages; a single stage as its one group, still shut.
    assert groups["__default__"] == sorted(STAGES)
    assert groups["ingest"] == ["ingest"]
    assert (tmp_path / "viz___default__.png").stat().st_size > 20_000


def test_expanding_the_groups_draws_every_node_and_dataset(
    site_url, browser, registered_pipelines, tmp_path
):
    for name, pipeline in registered_pipelines.items():
        open_and_assert_drawn(
            browser,
            site_url,
            f"pid={name}&expandAllPipelines=true",
            expanded_labels(pipeline),
            f"pipeline {name}, expanded",
        )
        assert browser.execute_script(GROUPS_SCRIPT) == [], f"pipeline {name}: a group stayed shut"
        close_feature_hints(browser)
        assert browser.save_screenshot(str(tmp_path / f"viz_{name}_expanded.png"))
    assert (tmp_path / "viz___default___expanded.png").stat().st_size > 20_000
