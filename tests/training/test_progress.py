"""Watching a training job: throttled progress lines with rate and ETA, the worker's start-up
time, and MLflow system metrics in the run that launched the job."""

from __future__ import annotations

import json
import logging
import re

import pytest
from support import isolated_mlflow, launch_config, shop_sentences, tokenizer_config
from transformers import TrainerState, TrainingArguments

from llm_pipeline.training.launch import TrackingRun, launch
from llm_pipeline.training.pretrain import tokenize_documents
from llm_pipeline.training.tokenizer import train_tokenizer
from llm_pipeline.training.tracking import ProgressLine, TrainingProgress

LINE = re.compile(
    r"^step (?P<step>\d+)/(?P<total>\d+) \((?P<percent>\d+)%\), (?P<rate>[\d.e+]+) steps/s"
    r"(, (?P<tokens>\d+) tokens/s)?, ETA (?P<eta>\d+:\d\d:\d\d)$"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_line_names_step_percent_rates_and_eta():
    clock = FakeClock()
    progress = ProgressLine(10, clock=clock)
    progress.start(0, 200)
    clock.now += 12.5
    assert progress.line(40, tokens=6400) == (
        "step 40/200 (20%), 3.2 steps/s, 512 tokens/s, ETA 0:00:50"
    )


def test_lines_come_at_most_once_per_interval_and_always_at_the_end():
    clock = FakeClock()
    progress = ProgressLine(30, clock=clock)
    progress.start(0, 100)
    shown = []
    for step in range(1, 101):
        clock.now += 1.0  # one step a second
        if line := progress.line(step):
            shown.append(line)
    assert [int(LINE.match(line)["step"]) for line in shown] == [30, 60, 90, 100]
    # Rates are over the last interval: the last line covers 10 steps in 10 seconds.
    assert LINE.match(shown[-1])["rate"] == "1" and shown[-1].endswith("ETA 0:00:00")
    assert "tokens/s" not in shown[0]


def test_a_resumed_run_counts_from_its_checkpoint_step():
    clock = FakeClock()
    progress = ProgressLine(5, clock=clock)
    progress.start(150, 200)
    clock.now += 10
    assert progress.line(170) == "step 170/200 (85%), 2 steps/s, ETA 0:00:15"
    assert progress.line(170) is None  # the same step again says nothing


def test_the_callback_logs_on_rank_zero_by_the_clock(caplog, tmp_path):
    clock = FakeClock()
    callback = TrainingProgress(20, clock=clock)
    arguments = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    state = TrainerState(max_steps=50)
    caplog.set_level(logging.INFO, logger="llm_pipeline.training.tracking")
    callback.on_train_begin(arguments, state, None)
    for step in range(1, 51):
        clock.now += 0.5
        state.global_step = step
        callback.on_step_end(arguments, state, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_pipeline.training.tracking"]
    assert [int(LINE.match(line)["step"]) for line in lines] == [40, 50]

    caplog.clear()
    other_rank = TrainerState(max_steps=50, is_world_process_zero=False)
    other_rank.global_step = 50
    callback.on_step_end(arguments, other_rank, None)
    assert not caplog.records


def test_tokenizing_in_batches_gives_the_ids_of_one_call(tmp_path, caplog):
    texts = shop_sentences() * 20
    train_tokenizer(texts, tokenizer_config(vocab_size=300, min_frequency=1), tmp_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    caplog.set_level(logging.INFO, logger="llm_pipeline.training.pretrain")
    encoded = tokenize_documents(texts, tokenizer, "tokenize docs.jsonl")
    assert encoded == tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert len(texts) > 1024  # more than one batch
    [line] = [r.getMessage() for r in caplog.records if r.name == "llm_pipeline.training.pretrain"]
    assert line.startswith(f"tokenize docs.jsonl: document {len(texts)}/{len(texts)} (100%)")
    assert "documents/s" in line and "tokens/s" in line


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    with isolated_mlflow(tmp_path, monkeypatch) as uri:
        yield uri


@pytest.mark.slow
def test_a_launched_job_logs_progress_startup_and_system_metrics(tmp_path, tracking_uri, caplog):
    import mlflow

    texts = shop_sentences() * 2
    train_tokenizer(texts, tokenizer_config(vocab_size=300, min_frequency=1), tmp_path / "tok")
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    job = {
        "train_file": tmp_path / "docs.jsonl",
        "tokenizer_dir": tmp_path / "tok",
        "output_dir": tmp_path / "model",
        "checkpoint_dir": tmp_path / "checkpoints",
        "block_size": 32,
        "model": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 64,
        },
        "training": {
            "max_steps": 6,
            "per_device_train_batch_size": 4,
            "logging_steps": 2,
            "save_strategy": "no",
            "disable_tqdm": True,  # as conf/base has it: the progress line replaces the bar
        },
    }
    caplog.set_level(logging.INFO, logger="llm_pipeline.training.launch")
    # Sampling every second: a job of a few seconds still leaves several samples.
    config = launch_config(progress_seconds=0, system_metrics_seconds=1)
    # An experiment of this store: the one an earlier test made active may live in another.
    experiment = mlflow.MlflowClient().create_experiment("progress")
    with mlflow.start_run(experiment_id=experiment) as run:
        tracking = TrackingRun(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)
        launch("llm_pipeline.training.pretrain", job, config, tmp_path / "jobs", tracking=tracking)
    output = "\n".join(record.getMessage() for record in caplog.records)
    assert re.search(r"step 6/6 \(100%\), [\d.e+]+ steps/s, \d+ tokens/s, ETA 0:00:00", output)
    assert len(re.findall(r"steps/s", output)) == 1  # 0 s between lines: only the last one
    assert "it/s" not in output
    assert re.search(
        r"worker ready [\d.]+ s after launch: torchrun [\d.]+ s, imports [\d.]+ s, "
        r"model and data [\d.]+ s",
        output,
    )
    assert re.search(r"tokenize docs.jsonl: document \d+/\d+ \(100%\)", output)

    metrics = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    assert metrics["system/system_memory_usage_megabytes"] > 0
    assert "pretrain/loss" in metrics


def test_the_startup_line_never_says_the_worker_started_before_its_launch(monkeypatch):
    """The kernel's process start time has 10 ms ticks from a rounded boot time, so it can read
    just before the launch that started the process: the line must not say "-0.0 s"."""
    import psutil

    from llm_pipeline.training import tracking
    from llm_pipeline.training.launch import LAUNCHED_AT_VARIABLE

    launched = tracking._IMPORTED_AT - 2.0
    monkeypatch.setenv(LAUNCHED_AT_VARIABLE, repr(launched))
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: launched - 0.004)
    line = tracking.startup_line()
    assert re.fullmatch(
        r"worker ready [\d.]+ s after launch: torchrun 0\.0 s, imports 2\.0 s, "
        r"model and data [\d.]+ s",
        line,
    ), line
