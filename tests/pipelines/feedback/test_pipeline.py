"""The feedback pipeline: run only when named, over an in-memory catalog, and as `kedro run`
after the models exist, its pairs ingested by the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.project import configure_project
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from pipelines.feedback.fixtures import build_length_reward_model, feedback_params
from support import RETRIEVAL_OFF, copy_of_finished_run, run_command, tool

from llm_pipeline.datasets import Folder, JSONLinesDataset, ModelFolder
from llm_pipeline.pipelines.feedback import create_pipeline

VERSION = "2020-01-01T00.00.00.000Z"


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_length_reward_model(tmp_path_factory.mktemp("reward"), tiny_model_dir)


def test_feedback_runs_only_when_named():
    from llm_pipeline.pipeline_registry import register_pipelines

    configure_project("llm_pipeline")
    pipelines = register_pipelines()
    feedback_nodes = {node.name for node in pipelines["feedback"].nodes}
    assert {
        "feedback.sample_answers",
        "feedback.judge_answers",
        "feedback.make_preference_pairs",
        "feedback.build_review_queue",
    } <= feedback_nodes
    assert not feedback_nodes & {node.name for node in pipelines["__default__"].nodes}


def test_the_judge_is_checked_before_any_answer_is_sampled():
    from kedro.pipeline import Pipeline

    order = [node.name for node in Pipeline(create_pipeline().nodes).nodes]
    assert order.index("check_judge") < order.index("sample_answers")


def test_feedback_never_reads_a_held_out_split():
    inputs = create_pipeline().inputs()
    assert {"validated_preferences_train", "validated_conversations_train"} <= inputs
    assert not [name for name in inputs if "validation" in name]


def test_the_pipeline_writes_pairs_that_follow_the_judge(
    tiny_model_dir, reward_model_dir, tmp_path
):
    preferences = pd.DataFrame(
        {
            "prompt": ["Can I return my tent?", "What does the head lamp cost?"],
            "chosen": ["Yes.", "20 euros."],
            "rejected": ["No.", "Free."],
        }
    )
    turns = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]
    params = feedback_params(
        answers_per_prompt=3,
        generation={
            **feedback_params()["generation"],
            "max_new_tokens": 12,
            "top_p": 1.0,
            "seed": 1,
        },
        min_margin={"reward_model": 0.0, "principles": 0.0},
    )
    pairs_path = tmp_path / "preferences/ai_feedback/ai_feedback.jsonl"
    catalog = DataCatalog(
        datasets={
            "validated_preferences_train": MemoryDataset(preferences),
            "validated_conversations_train": MemoryDataset(pd.DataFrame({"messages": [turns]})),
            "sft_model": MemoryDataset(ModelFolder(tiny_model_dir)),
            "reward_model": MemoryDataset(ModelFolder(reward_model_dir)),
            "params:feedback": MemoryDataset(params),
            "passage_index": MemoryDataset(Folder(tmp_path / "no_index")),
            "params:retrieval": MemoryDataset(RETRIEVAL_OFF),
            "ai_feedback_pairs": JSONLinesDataset(
                filepath=str(pairs_path), version=Version(None, VERSION)
            ),
            "ai_feedback_report": JSONDataset(filepath=str(tmp_path / "report.json")),
        }
    )

    outputs = SequentialRunner().run(create_pipeline(), catalog)

    pairs = JSONLinesDataset(filepath=str(pairs_path), version=Version(VERSION, None)).load()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["prompts"] == 3
    assert report["pairs_written"] == len(pairs) > 0
    assert report["pairs_written"] + sum(report["skipped_prompts"].values()) == 3
    assert set(pairs["origin"]) == {"ai_feedback"}
    assert (pairs["chosen_score"] > pairs["rejected_score"]).all()
    # The judge is the length reward model: the chosen answer is the longer, in tokens.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row in pairs.itertuples():
        assert len(tokenizer.encode(row.chosen)) >= len(tokenizer.encode(row.rejected))

    queue = outputs["review_queue"].load()
    assert list(queue.columns) == ["id", "prompt", "answer_a", "answer_b", "model"]
    assert set(queue["prompt"]) <= {
        "Can I return my tent?",
        "What does the head lamp cost?",
        "Hello",
    }
    assert (queue["answer_a"] != queue["answer_b"]).all()
    assert set(queue["model"]) == {tiny_model_dir.as_posix()}


@pytest.mark.slow
def test_kedro_run_feedback_after_the_models_exist_feeds_the_next_ingest(
    finished_tiny_run, tiny_model_dir, reward_model_dir, tmp_path
):
    # The shared tiny run's project: its data ingested, validated and indexed. Its own fine-tuned
    # and reward models give way to the tiny model and a reward model that prefers longer
    # answers, so that the judge's choices are known.
    project = copy_of_finished_run(finished_tiny_run, tmp_path / "project")
    kedro = [tool("kedro"), "run", "--env", "tiny"]
    for name, folder in (("sft_model", tiny_model_dir), ("reward_model", reward_model_dir)):
        shutil.rmtree(project / "data/06_models" / name)
        shutil.copytree(folder, project / "data/06_models" / name / VERSION / name)

    smaller = "feedback.prompts.count=10,feedback.generation.max_new_tokens=12"
    every_pair = "feedback.min_margin.reward_model=0.0"
    # The tiny models hold 256 positions: a prompt with its passages leaves no room to answer
    # (grounded feedback prompts are tested in test_nodes.py).
    plain = "retrieval.enabled=false"
    result = run_command(
        [*kedro, "--pipeline", "feedback", "--params", f"{smaller},{every_pair},{plain}"],
        cwd=project,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    (written,) = (project / "data/01_raw/preferences/ai_feedback").glob("ai_feedback.jsonl/*/*")
    pairs = [json.loads(line) for line in written.read_text().splitlines()]
    report = json.loads((project / "data/08_reporting/ai_feedback_report.json").read_text())
    assert report["prompts"] == 10
    queue = pd.read_json(project / "data/08_reporting/review/review_queue.jsonl", lines=True)
    assert 0 < len(queue) <= 10
    assert set(queue["model"]) == {f"data/06_models/sft_model/{VERSION}/sft_model"}
    assert len(pairs) == report["pairs_written"] > 0
    assert {pair["origin"] for pair in pairs} == {"ai_feedback"}
    assert {pair["judge"] for pair in pairs} == {
        f"data/06_models/reward_model/{VERSION}/reward_model"
    }
    primary = project / "data/03_primary"
    preferences = pd.read_json(primary / "preferences_train.jsonl", lines=True)
    conversations = pd.read_json(primary / "conversations_train.jsonl", lines=True)
    first_user_turns = [
        next(t["content"] for t in turns if t["role"] == "user") for turns in conversations.messages
    ]
    assert {pair["prompt"] for pair in pairs} <= {*preferences["prompt"], *first_user_turns}

    again = run_command([*kedro, "--pipeline", "ingest"], cwd=project)
    assert again.returncode == 0, again.stderr[-3000:]
    accounting = pd.read_json(project / "data/02_intermediate/accounting.jsonl", lines=True)
    source = written.as_posix()  # kedro gives the raw folder as an absolute path
    assert source in set(accounting["source"]), (source, accounting["source"].tolist())
    (row,) = accounting[accounting["source"] == source].itertuples()
    assert row.rows_seen == len(pairs)
    assert row.balanced
    ingested = pd.concat(
        pd.read_json(project / f"data/02_intermediate/preferences_{split}.jsonl", lines=True)
        for split in ("train", "validation")
    )
    from_feedback = ingested[ingested["category"] == "ai_feedback"]
    assert len(from_feedback) > 0
    if "origin" in ingested:  # kept by ingest once it records where a pair came from
        assert set(from_feedback["origin"]) == {"ai_feedback"}
