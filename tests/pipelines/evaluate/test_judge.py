"""Judged metrics: no judge (not computed, no number), a local judge model read through its
digit probabilities, and an OpenAI-compatible endpoint served by a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import build_tiny_model, judge_config

from llm_pipeline.pipelines.evaluate.judge import (
    JUDGED_METRICS,
    judge_answers,
    judge_answers_counting_failures,
)

ROWS = [
    {"prompt": "How long does the tent take to ship?", "context": "Every tent ships in 3 days."},
    {"prompt": "Can I return my boots?", "context": None},
    {"prompt": "What does the stove cost, and can I pay in parts?", "context": ""},
]
ANSWERS = ["The tent ships in 3 days.", "Yes.", "It costs 45 euros."]


def test_without_a_judge_every_judged_metric_is_not_computed_and_says_why():
    found = judge_answers(ROWS, ANSWERS, judge_config())

    assert set(found) == set(JUDGED_METRICS)
    for figure in found.values():
        assert figure == {
            "computed": False,
            "reason": "no judge configured (evaluate.judge.kind: none)",
        }


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"kind": "local"}, "set judge.model"),
        ({"kind": "openai"}, "set judge.endpoint"),
        ({"kind": "none", "temperature": 0}, "Extra inputs are not permitted"),
    ],
)
def test_an_incomplete_or_unknown_judge_setting_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        judge_config(**settings)


def test_answers_that_do_not_match_the_examples_are_refused():
    with pytest.raises(ValueError, match="2 answers for 3 examples"):
        judge_answers(ROWS, ANSWERS[:2], judge_config())


# --- a local judge -----------------------------------------------------------------------


def judge_leaning_to(folder: Path, digit: str | None, strength: float = 0.5) -> Path:
    """The same tiny random Llama each time, with a constant logit bias towards ``digit``
    (None: no bias). Llama's lm_head has no bias, so one residual dimension is made constant
    (set in every embedding, written by no layer) and its lm_head column serves as one."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    build_tiny_model(folder, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_causal_lm(folder)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 0.05
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        if digit is not None:
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(digit), 0] = strength
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def judges(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("judges")
    return {
        "neutral": judge_leaning_to(root / "neutral", None),
        "5": judge_leaning_to(root / "five", "5"),
        "1": judge_leaning_to(root / "one", "1"),
    }


def test_a_local_judge_scores_in_range_deterministically_and_skips_rows_without_context(judges):
    config = judge_config(kind="local", model=judges["neutral"], batch_size=2)

    first = judge_answers(ROWS, ANSWERS, config)
    again = judge_answers(ROWS, ANSWERS, config)

    assert first == again
    for metric in ("relevance", "coherence", "fluency"):
        assert len(first[metric]) == 3
        assert all(1.0 < score < 5.0 for score in first[metric]), metric
    assert 1.0 < first["groundedness"][0] < 5.0
    assert first["groundedness"][1:] == [None, None]
    # Continuous, not a rounded digit: the expectation over all five.
    assert first["fluency"][0] not in (1.0, 2.0, 3.0, 4.0, 5.0)


def test_the_scores_follow_the_judge_models_digit_probabilities(judges):
    scores = {
        name: judge_answers(ROWS, ANSWERS, judge_config(kind="local", model=folder))
        for name, folder in judges.items()
    }

    for metric in JUDGED_METRICS:
        for index in range(3) if metric != "groundedness" else [0]:
            low, neutral, high = (scores[name][metric][index] for name in ("1", "neutral", "5"))
            assert low + 0.3 < neutral < high - 0.3, (metric, index, low, neutral, high)


def test_a_score_does_not_depend_on_the_prompts_batched_with_it(judges):
    alone = judge_answers(
        ROWS, ANSWERS, judge_config(kind="local", model=judges["5"], batch_size=1)
    )
    together = judge_answers(ROWS, ANSWERS, judge_config(kind="local", model=judges["5"]))

    for metric in ("relevance", "fluency"):
        assert together[metric] == pytest.approx(alone[metric], abs=1e-5)


def test_max_examples_limits_what_is_judged(judges):
    config = judge_config(kind="local", model=judges["5"], max_examples=1)

    found = judge_answers(ROWS, ANSWERS, config)

    assert found["fluency"][0] is not None
    assert found["fluency"][1:] == [None, None]


def test_a_tokenizer_without_digit_tokens_is_reported_not_guessed(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["the", "tent", "ships", "in", "days", "can", "i", "return", "my", "boots"]
    vocab = {"[UNK]": 0, "[EOS]": 1, **{word: i + 2 for i, word in enumerate(words)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", eos_token="[EOS]", pad_token="[EOS]"
    )
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    tokenizer.save_pretrained(tmp_path)

    found = judge_answers(ROWS, ANSWERS, judge_config(kind="local", model=tmp_path))

    for metric in JUDGED_METRICS:
        assert found[metric]["computed"] is False
        assert "no single token per digit 1-5" in found[metric]["reason"]


# --- an OpenAI-compatible endpoint ---------------------------------------------------------


class FakeGrader(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that reads the rubric and the answer it was sent: 4 for
    fluency, 2 for everything else; no digit for the answer "shrug", HTTP 500 for "crash", the
    digit after a "10" for "chatty", a reply too late for "slow". It records what it was asked."""

    asked: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeGrader.asked.append({"path": self.path, **body, "auth": self.headers["Authorization"]})
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if "Answer: crash" in user:
            self.send_error(500, "grader crashed")
            return
        if "Answer: slow" in user:
            time.sleep(1.0)
        digit = "4" if "Fluency:" in system else "2"
        reply = "I cannot say" if "Answer: shrug" in user else digit
        if "Answer: chatty" in user:
            reply = f"Score (of 10 possible): {digit}"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting ("slow")

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrader)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    FakeGrader.asked = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_an_endpoint_judge_sends_rubric_and_answer_and_reads_the_digit(endpoint, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "secret-key")
    config = judge_config(
        kind="openai", endpoint=endpoint, model_name="grader", api_key_env="JUDGE_KEY"
    )

    found, failures = judge_answers_counting_failures(ROWS, ANSWERS, config)

    assert found["fluency"] == [4.0, 4.0, 4.0]
    assert found["relevance"] == [2.0, 2.0, 2.0]
    assert found["groundedness"] == [2.0, None, None]
    assert failures == dict.fromkeys(JUDGED_METRICS, 0)
    assert len(FakeGrader.asked) == 1 + 3 * 3  # groundedness asked only where there is context
    first = FakeGrader.asked[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["model"] == "grader" and first["temperature"] == 0
    assert first["auth"] == "Bearer secret-key"
    assert "Groundedness:" in first["messages"][0]["content"]
    assert "Context: Every tent ships in 3 days." in first["messages"][1]["content"]
    assert "Answer: The tent ships in 3 days." in first["messages"][1]["content"]


def test_rows_the_judge_fails_on_are_missing_and_counted(endpoint):
    config = judge_config(kind="openai", endpoint=endpoint, model_name="grader")

    found, failures = judge_answers_counting_failures(ROWS, ["shrug", "crash", "chatty"], config)

    assert found["fluency"] == [None, None, 4.0]
    assert found["relevance"] == [None, None, 2.0]
    assert failures == {"groundedness": 1, "relevance": 2, "coherence": 2, "fluency": 2}
    # Groundedness was asked about one row only, and it failed: no number, the first error.
    assert found["groundedness"]["computed"] is False
    assert "no score 1-5 in the judge's reply 'I cannot say'" in found["groundedness"]["reason"]


def test_a_row_that_times_out_is_missing_and_the_others_are_scored(endpoint):
    config = judge_config(
        kind="openai", endpoint=endpoint, model_name="grader", timeout_seconds=0.3
    )
    rows, answers = ROWS[1:], ["slow", "Fine."]

    found, failures = judge_answers_counting_failures(rows, answers, config)

    assert found["fluency"] == [None, 4.0]
    assert failures["fluency"] == 1


def test_an_unreachable_endpoint_leaves_the_metrics_not_computed_with_the_error():
    closed = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrader)
    port = closed.server_address[1]
    closed.server_close()
    config = judge_config(
        kind="openai", endpoint=f"http://127.0.0.1:{port}/v1", model_name="grader"
    )

    started = time.monotonic()
    found = judge_answers(ROWS, ANSWERS, config)

    assert time.monotonic() - started < 5
    for metric in JUDGED_METRICS:
        assert found[metric]["computed"] is False
        reason = found[metric]["reason"]
        assert f"the judge failed: http://127.0.0.1:{port}/v1/chat/completions" in reason
        assert "refused" in reason.lower()


def test_a_missing_key_variable_is_reported_not_sent(endpoint, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    config = judge_config(
        kind="openai", endpoint=endpoint, model_name="grader", api_key_env="JUDGE_KEY"
    )

    found = judge_answers(ROWS, ANSWERS, config)

    assert found["fluency"] == {
        "computed": False,
        "reason": "the judge's key variable JUDGE_KEY is not set",
    }
    assert FakeGrader.asked == []
