"""Human review: the page driven by its keys in headless Chromium, and the import."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT

from llm_pipeline.pipelines.feedback.review_queue import review_pairs
from llm_pipeline.tools.review import (
    ReviewError,
    ReviewSession,
    import_decisions,
    read_jsonl,
    review_server,
    write_jsonl,
)

PROMPTS = ["How long does shipping take?", "Can I return shoes?", "Where is my order?"]
ANSWERS = [
    ["3-5 business days.", "No idea."],
    ["Yes, within 30 days.", "Ask someone else."],
    ["Track it with the link we sent.", "Somewhere <b>out</b> there."],
]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def queue(tmp_path) -> Path:
    path = tmp_path / "queue.jsonl"
    write_jsonl(path, review_pairs(PROMPTS, ANSWERS, "sft", seed=1))
    return path


@pytest.fixture
def server(queue, tmp_path):
    session = ReviewSession(queue, tmp_path / "decisions.jsonl", "alice")
    httpd = review_server(session)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/", session
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda _: condition())


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def choices(path: Path) -> list[str]:
    return [row["choice"] for row in read_jsonl(path)] if path.exists() else []


def test_a_reviewer_judges_with_keys_and_the_choices_become_preference_pairs(
    server, browser, queue, tmp_path
):
    from selenium.webdriver.common.by import By

    url, session = server
    browser.get(url)
    wait_for(browser, lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    items = read_jsonl(queue)
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    assert text("prompt") == items[0]["prompt"] and text("answer-a") == items[0]["answer_a"]
    assert text("progress").startswith("1 of 3")

    press(browser, "a")  # pair 1: A
    wait_for(browser, lambda: choices(session.decisions) == ["a"])
    assert text("prompt") == items[1]["prompt"]
    press(browser, "2")  # pair 2: B
    wait_for(browser, lambda: len(choices(session.decisions)) == 2)
    press(browser, "u")  # changed my mind about pair 2
    wait_for(browser, lambda: choices(session.decisions)[-1] == "undone")
    assert text("prompt") == items[1]["prompt"]
    press(browser, "a")
    wait_for(browser, lambda: len(choices(session.decisions)) == 4)
    # Pair 3 holds markup in an answer: shown as text, never interpreted.
    assert "<b>out</b>" in text("answer-a") + text("answer-b")
    press(browser, "x")
    wait_for(browser, lambda: choices(session.decisions) == ["a", "b", "undone", "a", "both_bad"])
    assert text("progress").endswith("3 judged")
    browser.save_screenshot(str(tmp_path / "review.png"))
    decisions = read_jsonl(session.decisions)
    assert {row["reviewer"] for row in decisions} == {"alice"}
    assert all(row["reviewed_at"].endswith("+00:00") for row in decisions)

    raw = tmp_path / "raw" / "preferences" / "human_review"
    summary = import_decisions(queue, session.decisions, raw)
    assert summary["both_bad"] == 1 and summary["undecided"] == 0
    (written,) = summary["written"]
    rows = read_jsonl(Path(written))
    assert [(row["prompt"], row["chosen"]) for row in rows] == [
        (items[0]["prompt"], items[0]["answer_a"]),
        (items[1]["prompt"], items[1]["answer_a"]),
    ]
    assert {(row["origin"], row["reviewer"]) for row in rows} == {("human", "alice")}
    # A second import never overwrites the first.
    again = import_decisions(queue, session.decisions, raw)
    assert set(again["written"]).isdisjoint(summary["written"])

    # The next run's ingest keeps who judged and when.
    from llm_pipeline.pipelines.ingest import nodes

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ingest.yml").read_text())
    files = {str(path): path.read_bytes for path in sorted(raw.parent.rglob("*.jsonl"))}
    preferences, quarantine, _ = nodes.read_preferences(files, params["ingest"])
    assert quarantine.empty
    assert set(preferences["origin"]) == {"human"} and set(preferences["reviewer"]) == {"alice"}
    assert set(preferences["category"]) == {"human_review"}
    assert preferences["reviewed_at"].str.endswith("+00:00").all()


def test_import_names_the_line_of_a_decision_for_an_unknown_pair(queue, tmp_path):
    decisions = tmp_path / "decisions.jsonl"
    first = read_jsonl(queue)[0]["id"]
    decisions.write_text(
        json.dumps({"id": first, "choice": "a", "reviewer": "bo", "reviewed_at": "t"})
        + "\n"
        + json.dumps({"id": "nope", "choice": "b", "reviewer": "bo", "reviewed_at": "t"})
        + "\n"
    )
    with pytest.raises(ReviewError, match=r"decisions.jsonl:2: unknown_pair: 'nope'"):
        import_decisions(queue, decisions, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_server_refuses_an_unknown_choice(server):
    import urllib.error
    import urllib.request

    url, session = server
    item = session.items[0]["id"]
    request = urllib.request.Request(
        url + "api/decision",
        data=json.dumps({"id": item, "choice": "maybe"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 400
    assert not session.decisions.exists()


def test_the_page_ships_with_the_package():
    import llm_pipeline.tools.review as review

    assert review.PAGE.exists() and "keydown" in review.PAGE.read_text()
