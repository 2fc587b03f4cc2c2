"""Human review: the page driven by its keys in headless Chromium, the server refusing what
the page did not send, and the import."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT

from llm_pipeline.cli.review import (
    ReviewError,
    ReviewSession,
    import_decisions,
    read_jsonl,
    review_server,
    write_jsonl,
)
from llm_pipeline.pipelines.feedback.review_queue import review_pairs

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


@contextlib.contextmanager
def serving(session: ReviewSession) -> Iterator[str]:
    """The review server of ``session`` on a thread, for the ``with`` block; its URL."""
    httpd = review_server(session)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(queue, tmp_path):
    session = ReviewSession(queue, tmp_path / "decisions.jsonl", "alice")
    with serving(session) as url:
        yield url, session


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
    # The page shows the next pair once the server's answer arrives, a moment after the file.
    wait_for(browser, lambda: text("prompt") == items[1]["prompt"])
    press(browser, "2")  # pair 2: B
    wait_for(browser, lambda: len(choices(session.decisions)) == 2)
    press(browser, "u")  # changed my mind about pair 2
    wait_for(browser, lambda: choices(session.decisions)[-1] == "undone")
    wait_for(browser, lambda: text("prompt") == items[1]["prompt"])
    press(browser, "a")
    wait_for(browser, lambda: len(choices(session.decisions)) == 4)
    # Pair 3 holds markup in an answer: shown as text, never interpreted.
    wait_for(browser, lambda: "<b>out</b>" in text("answer-a") + text("answer-b"))
    press(browser, "x")
    wait_for(browser, lambda: choices(session.decisions) == ["a", "b", "undone", "a", "both_bad"])
    wait_for(browser, lambda: text("progress").endswith("3 judged"))
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


class SlowSession(ReviewSession):
    """A server that answers each decision a while after writing it, as a loaded machine may."""

    def record(self, item_id: str, choice: str) -> dict[str, str]:
        decision = super().record(item_id, choice)
        time.sleep(0.5)
        return decision


def test_keys_pressed_before_the_server_answers_act_in_turn(browser, queue, tmp_path):
    """A quick reviewer: "a" then "2" judges two pairs, and "u" right after undoes the second,
    although each key comes before the server has answered the one before it."""
    from selenium.webdriver.common.by import By

    session = SlowSession(queue, tmp_path / "decisions.jsonl", "alice")
    with serving(session) as url:
        browser.get(url)
        ready = lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready")  # noqa: E731
        wait_for(browser, ready)
        for key in ("a", "2", "u"):
            press(browser, key)
        wait_for(browser, lambda: len(choices(session.decisions)) == 3)
    items = read_jsonl(queue)
    decisions = [(row["id"], row["choice"]) for row in read_jsonl(session.decisions)]
    assert decisions == [
        (items[0]["id"], "a"),
        (items[1]["id"], "b"),
        (items[1]["id"], "undone"),
    ]


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


def served_token(url: str) -> str:
    """The secret the page carries, read from the page as a browser gets it."""
    with urllib.request.urlopen(url, timeout=5) as response:
        page = response.read().decode()
    (token,) = re.findall(r'<meta name="review-token" content="([^"]+)">', page)
    return token


def request(
    url: str, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict]:
    """One raw HTTP request to the review server with exactly ``headers`` (underscores in the
    names are dashes; a ``Host`` given replaces the real one), and its status and JSON body."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            method, path, body, {name.replace("_", "-"): value for name, value in headers.items()}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_server_refuses_an_unknown_choice(server):
    url, session = server
    item = session.items[0]["id"]
    status, body = request(
        url,
        "POST",
        "/api/decision",
        json.dumps({"id": item, "choice": "maybe"}).encode(),
        Content_Type="application/json",
        X_Review_Token=served_token(url),
    )
    assert status == 400 and "choice must be one of" in body["error"]
    assert not session.decisions.exists()


def test_each_server_has_its_own_secret_in_its_page(server, queue, tmp_path):
    url, _ = server
    other = review_server(ReviewSession(queue, tmp_path / "other.jsonl", "bo"))
    try:
        assert len(served_token(url)) >= 40 and served_token(url) != other.token
    finally:
        other.server_close()


# Each forgery is the page's own request with one header changed (None: left out), the status
# it gets and a word of its reason.
FORGED = {
    "no token": ({"X-Review-Token": None}, 403, "X-Review-Token"),
    "wrong token": ({"X-Review-Token": "guessed"}, 403, "X-Review-Token"),
    "foreign origin": ({"Origin": "http://evil.example"}, 403, "origin"),
    "sandboxed origin": ({"Origin": "null"}, 403, "origin"),
    "rebound host": ({"Host": "evil.example:{port}"}, 403, "host"),
    "rebound host without port": ({"Host": "evil.example"}, 403, "host"),
    "form-encoded body": (
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "application/json",
    ),
    "plain text body": ({"Content-Type": "text/plain"}, 415, "application/json"),
}


@pytest.mark.parametrize("case", FORGED, ids=list(FORGED))
def test_a_forged_decision_is_refused_and_writes_nothing(server, case):
    url, session = server
    port = url.rstrip("/").rsplit(":", 1)[1]
    page_headers = {
        "Content-Type": "application/json",
        "X-Review-Token": served_token(url),
        "Origin": url.rstrip("/"),
    }
    item = session.items[0]["id"]
    decision = json.dumps({"id": item, "choice": "a"}).encode()
    assert request(url, "POST", "/api/decision", decision, **page_headers)[0] == 200
    before = session.decisions.read_bytes()

    changed, expected_status, reason = FORGED[case]
    headers = {**page_headers, **changed}
    headers = {name: value.format(port=port) for name, value in headers.items() if value}
    body = f"id={item}&choice=b".encode() if "form" in case else decision.replace(b'"a"', b'"b"')
    status, answer = request(url, "POST", "/api/decision", body, **headers)
    assert status == expected_status and reason in answer["error"]
    assert session.decisions.read_bytes() == before


def test_the_page_and_its_queue_answer_only_under_the_servers_own_names(server):
    url, _ = server
    port = url.rstrip("/").rsplit(":", 1)[1]
    token = served_token(url)
    # A rebinding page cannot read the page, and so never learns the secret.
    status, answer = request(url, "GET", "/", Host=f"evil.example:{port}")
    assert status == 403 and "host" in answer["error"]
    assert request(url, "GET", "/api/queue")[0] == 403  # the queue needs the secret too
    status, queue = request(
        url, "GET", "/api/queue", Host=f"localhost:{port}", X_Review_Token=token
    )
    assert status == 200 and len(queue["items"]) == 3


EVIL_PAGE = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink" action="{target}">
<input name='{{"id":"{item}","choice":"b","pad":"' value='"}}'></form>
<script>
(async () => {{
  const body = JSON.stringify({{ id: "{item}", choice: "b" }});
  await fetch("{target}", {{ method: "POST", mode: "no-cors",
    headers: {{ "Content-Type": "text/plain" }}, body }}).catch(() => null);
  await fetch("{target}", {{ method: "POST",
    headers: {{ "Content-Type": "application/json", "X-Review-Token": "guessed" }}, body }})
    .catch(() => null);
  document.querySelector("iframe").onload = () => {{ document.title = "sent"; }};
  document.getElementById("form").submit();
}})();
</script></body></html>"""


def test_another_site_open_in_the_reviewers_browser_cannot_write(server, browser, caplog):
    """A page of another origin tries what a browser lets any site do: a no-cors fetch, a
    fetch with the JSON type and a guessed secret, and a form posting JSON-looking text."""
    url, session = server
    session.record(session.items[0]["id"], "a")
    before = session.decisions.read_bytes()
    page = EVIL_PAGE.format(target=url + "api/decision", item=session.items[0]["id"]).encode()

    class EvilSite(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args) -> None:
            pass

    evil = ThreadingHTTPServer(("127.0.0.1", 0), EvilSite)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with caplog.at_level("WARNING", logger="llm_pipeline.cli.review"):
            browser.get(f"http://localhost:{evil.server_port}/")
            wait_for(browser, lambda: browser.title == "sent")
        refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Refused")]
    finally:
        evil.shutdown()
        evil.server_close()
    assert session.decisions.read_bytes() == before
    # The no-cors fetch and the form reached the server and were refused; the fetch with a
    # custom header never got past the browser's preflight.
    assert len(refused) == 2 and all("origin" in reason for reason in refused)


def test_the_page_ships_with_the_package():
    import llm_pipeline.cli.review as review

    assert review.PAGE.exists() and "keydown" in review.PAGE.read_text()
