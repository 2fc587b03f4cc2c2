"""Judged metrics: no judge (not computed, no number), a local judge model read through its
digit probabilities, and an OpenAI-compatible endpoint served by a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import build_tiny_model

from llm_pipeline.evaluation.judge import JUDGED_METRICS, JudgeConfig, judge_answers

ROWS = [
    {"prompt": "How long does the tent take to ship?", "context": "Every tent ships in 3 days."},
    {"prompt": "Can I return my boots?", "context": None},
    {"prompt": "What does the stove cost?", "context": ""},
]
ANSWERS = ["The tent ships in 3 days.", "Yes, within two weeks.", "It costs 45 euros."]


def test_without_a_judge_every_judged_metric_is_not_computed_and_says_why():
    found = judge_answers(ROWS, ANSWERS, JudgeConfig())

    assert set(found) == set(JUDGED_METRICS)
    for figure in found.values():
        assert figure == {
            "computed": False,
            "reason": "no judge configured (evaluate.judge.kind: none)",
        }


@pytest.mark.parametrize(
    "settings, message",
    [({"kind": "local"}, "set judge.model"), ({"kind": "openai"}, "set judge.endpoint")],
)
def test_an_incomplete_judge_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        JudgeConfig(**settings)


# --- a local judge -----------------------------------------------------------------------


def judge_that_answers(folder, digit: str):
    """A tiny model trained a few steps to reply ``digit`` to every judging prompt."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.evaluation.judge import judge_prompt
    from llm_pipeline.training.models import load_causal_lm

    build_tiny_model(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_causal_lm(folder).train()
    texts = [
        tokenizer.apply_chat_template(
            judge_prompt(metric, row, answer), tokenize=False, add_generation_prompt=True
        )
        + digit
        for metric in JUDGED_METRICS
        for row, answer in zip(ROWS, ANSWERS, strict=True)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(12):
        for text in texts[::3]:
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            labels = torch.full_like(ids, -100)
            labels[0, -1] = ids[0, -1]
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    root = tmp_path_factory.mktemp("judges")
    return {digit: judge_that_answers(root / digit, digit) for digit in ("1", "5")}


def test_a_local_judge_scores_in_range_deterministically_and_skips_rows_without_context(judges):
    config = JudgeConfig(kind="local", model=judges["5"], batch_size=2)

    first = judge_answers(ROWS, ANSWERS, config)
    again = judge_answers(ROWS, ANSWERS, config)

    assert first == again
    for metric in JUDGED_METRICS:
        assert all(1.0 <= score <= 5.0 for score in first[metric] if score is not None)
    assert first["groundedness"][0] is not None
    assert first["groundedness"][1:] == [None, None]
    assert None not in first["fluency"]


def test_the_scores_follow_what_the_judge_model_says(judges):
    high = judge_answers(ROWS, ANSWERS, JudgeConfig(kind="local", model=judges["5"]))
    low = judge_answers(ROWS, ANSWERS, JudgeConfig(kind="local", model=judges["1"]))

    for metric in ("relevance", "coherence", "fluency"):
        assert min(high[metric]) > 4.0 > 2.0 > max(low[metric]), metric


def test_max_examples_limits_what_is_judged(judges):
    config = JudgeConfig(kind="local", model=judges["5"], max_examples=1)

    found = judge_answers(ROWS, ANSWERS, config)

    assert found["fluency"][0] is not None
    assert found["fluency"][1:] == [None, None]


# --- an OpenAI-compatible endpoint ---------------------------------------------------------


class FakeGrader(BaseHTTPRequestHandler):
    """An OpenAI-compatible server: 4 for fluency, 2 for everything else, and no digit at all
    for the answer "shrug". It records what it was asked."""

    asked: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeGrader.asked.append({"path": self.path, **body, "auth": self.headers["Authorization"]})
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        reply = "I cannot say" if "Answer: shrug" in user else "4" if "Fluency:" in system else "2"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeGrader.asked = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_an_endpoint_judge_sends_rubric_and_answer_and_reads_the_digit(endpoint, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "secret-key")
    config = JudgeConfig(
        kind="openai", endpoint=endpoint, model_name="grader", api_key_env="JUDGE_KEY"
    )

    found = judge_answers(ROWS, ANSWERS, config)

    assert found["fluency"] == [4.0, 4.0, 4.0]
    assert found["relevance"] == [2.0, 2.0, 2.0]
    assert found["groundedness"] == [2.0, None, None]
    first = FakeGrader.asked[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["model"] == "grader" and first["temperature"] == 0
    assert first["auth"] == "Bearer secret-key"
    assert "Context: Every tent ships in 3 days." in first["messages"][1]["content"]
    assert "Answer: The tent ships in 3 days." in first["messages"][1]["content"]


def test_a_reply_without_a_score_is_missing_and_the_rest_count(endpoint):
    config = JudgeConfig(kind="openai", endpoint=endpoint, model_name="grader")

    found = judge_answers(ROWS, ["shrug", *ANSWERS[1:]], config)

    assert found["fluency"] == [None, 4.0, 4.0]


def test_an_unreachable_endpoint_leaves_the_metrics_not_computed_with_the_error():
    config = JudgeConfig(
        kind="openai", endpoint="http://127.0.0.1:9/v1", model_name="grader", timeout_seconds=5
    )

    found = judge_answers(ROWS, ANSWERS, config)

    for metric in JUDGED_METRICS:
        assert found[metric]["computed"] is False
        assert "the judge failed: http://127.0.0.1:9/v1/chat/completions" in found[metric]["reason"]


def test_a_missing_key_variable_is_reported_not_sent(endpoint, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    config = JudgeConfig(
        kind="openai", endpoint=endpoint, model_name="grader", api_key_env="JUDGE_KEY"
    )

    found = judge_answers(ROWS, ANSWERS, config)

    assert found["fluency"]["reason"] == "the judge's key variable JUDGE_KEY is not set"
    assert FakeGrader.asked == []
