"""A judge proves itself on controls before its scores count: a judge that tells intact answers
from damaged ones passes and its metrics are reported; a constant or a random judge fails and
its metrics are reported as not computed, with the control figure. No language model here: the
judges are ``Scorer`` functions."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
import yaml
from support import judge_config, parameters_of

from llm_pipeline.cli.sample_data import make_validation
from llm_pipeline.pipelines.evaluate import judge as judge_module
from llm_pipeline.pipelines.evaluate.controls import (
    NOISE_RATE,
    alter_numbers,
    character_noise,
    contradict_context,
    control_pairs,
    shuffle_words,
    word_pool,
)
from llm_pipeline.pipelines.evaluate.judge import (
    JUDGED_METRICS,
    JudgeRequest,
    judge_with_controls,
    shares_starting_model,
)

SEED = 42
CONFIG = judge_config(
    kind="openai", endpoint="http://unused", model_name="x", min_control_accuracy=0.8
)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """30 shop questions with reference answers and contexts; the last two without context."""
    found = make_validation(random.Random(1), 30, forbidden=set())
    found[-1]["context"] = None
    found[-2]["context"] = ""
    return found


def asked(request: JudgeRequest) -> tuple[str, str, str, str | None]:
    """(metric, question, answer, context) of a judge request."""
    return request.metric, request.question, request.answer, request.context


def perfect_judge(rows: list[dict]):
    """Scores 1 an answer it knows to be a damaged control (by metric, question and text), 5
    anything else, and records every prompt it was sent."""
    damaged = {
        (metric, rows[pair.index]["prompt"], pair.damaged)
        for metric, pairs in control_pairs(rows, SEED).items()
        for pair in pairs
    }
    calls: list[list] = []

    def score(prompts):
        calls.append([asked(turns) for turns in prompts])
        return [1.0 if asked(turns)[:3] in damaged else 5.0 for turns in prompts], []

    return score, calls


def constant_judge(prompts):
    return [3.0] * len(prompts), []


def random_judge():
    rng = random.Random(7)
    return lambda prompts: ([rng.uniform(1, 5) for _ in prompts], [])


def answers_of(rows: list[dict]) -> dict[str, list[str]]:
    return {
        "base": ["I am not sure." for _ in rows],
        "sft": [row["reference"] for row in rows],
    }


def test_a_judge_that_tells_intact_from_damaged_passes_and_its_metrics_count(rows):
    score, _ = perfect_judge(rows)

    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=200, scorer=score
    )

    assert set(found) == {"base", "sft"}
    for name in found:
        assert set(found[name]) == set(JUDGED_METRICS)
        for metric, entry in found[name].items():
            assert "computed" not in entry, (name, metric, entry)
            control = entry["control"]
            assert control["passed"] is True and control["value"] == 1.0
            assert control["low"] == control["high"] == 1.0
            assert control["threshold"] == 0.8
            assert entry["values"][0] == 5.0
    assert found["sft"]["relevance"]["control"]["n"] == len(rows)
    # Groundedness: controls and scores only where there is a context.
    assert found["sft"]["groundedness"]["control"]["n"] == len(rows) - 2
    assert found["sft"]["groundedness"]["values"][-2:] == [None, None]
    assert None not in found["sft"]["groundedness"]["values"][:-2]


def test_a_constant_judge_fails_every_control_because_ties_are_failures(rows):
    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=200, scorer=constant_judge
    )

    for name in found:
        for metric, entry in found[name].items():
            assert entry["computed"] is False
            assert "values" not in entry
            assert entry["control"]["value"] == 0.0 and entry["control"]["passed"] is False
            assert entry["reason"].startswith(
                f"judge failed its control: {metric} control accuracy 0.00 [0.00, 0.00] < 0.8"
            )


def test_a_random_judge_fails_its_controls_with_an_interval_around_chance(rows):
    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=500, scorer=random_judge()
    )

    for metric in JUDGED_METRICS:
        entry = found["sft"][metric]
        control = entry["control"]
        assert entry["computed"] is False, metric
        assert control["passed"] is False
        assert 0.2 < control["value"] < 0.8, (metric, control)
        assert control["low"] < control["value"] < control["high"]
        assert f"{metric} control accuracy {control['value']:.2f}" in entry["reason"]
        # The same control figure for every model: the controls ran once.
        assert found["base"][metric]["control"] == control


def fluent_only_judge(rows):
    """A scorer perfect on fluency and constant (3.0) on every other metric."""
    perfect, _ = perfect_judge(rows)

    def fluent_only(prompts):
        scores, errors = perfect(prompts)
        return [
            s if asked(t)[0] == "fluency" else 3.0 for s, t in zip(scores, prompts, strict=True)
        ], errors

    return fluent_only


def test_a_threshold_separates_a_passing_from_a_failing_metric(rows):
    fluent_only = fluent_only_judge(rows)

    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=200, scorer=fluent_only
    )

    assert found["sft"]["fluency"]["values"][0] == 5.0
    assert all(found["sft"][m]["computed"] is False for m in JUDGED_METRICS if m != "fluency")


def test_control_scores_the_judge_could_not_give_count_as_failures(rows):
    perfect, _ = perfect_judge(rows)

    def failing_on_half(prompts):
        scores, _ = perfect(prompts)
        errors = ["timeout"] * (len(prompts) // 2)
        return [None] * (len(prompts) // 2) + scores[len(prompts) // 2 :], errors

    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=200, scorer=failing_on_half
    )

    control = found["sft"]["coherence"]["control"]
    assert control["value"] == pytest.approx(0.5, abs=0.04)
    assert control["failed_scores"] == len(rows)
    assert "scores failed, first: timeout" in found["sft"]["coherence"]["reason"]


def test_one_judge_is_made_for_every_model_and_its_controls_run_once(rows, monkeypatch):
    score, calls = perfect_judge(rows)
    made = []
    monkeypatch.setattr(judge_module, "_local_scorer", lambda config: made.append(config) or score)
    config = judge_config(kind="local", model="/unused", min_control_accuracy=0.8)
    answers = {name: [row["reference"] for row in rows] for name in ("a", "b", "c")}

    found = judge_with_controls(rows, answers, config, seed=SEED, resamples=200)

    assert len(made) == 1
    assert set(found) == {"a", "b", "c"}
    # One call per metric for the controls, then one per metric and model.
    assert len(calls) == len(JUDGED_METRICS) * (1 + len(answers))


def test_given_contexts_replace_the_rows_for_the_answers_but_not_for_the_controls(rows):
    score, calls = perfect_judge(rows)
    retrieved = [f"retrieved passage {i}" for i in range(len(rows))]
    retrieved[0] = None

    found = judge_with_controls(
        rows,
        {"rag": answers_of(rows)["sft"]},
        CONFIG,
        seed=SEED,
        resamples=200,
        contexts=retrieved,
        scorer=score,
    )

    control_call, answer_call = ([c for c in calls if c[0][0] == "groundedness"][i] for i in (0, 1))
    assert {context for *_, context in control_call} <= {row["context"] for row in rows}
    assert [context for *_, context in answer_call] == retrieved[1:]
    assert found["rag"]["groundedness"]["values"][0] is None
    assert found["rag"]["groundedness"]["values"][-1] == 5.0


def test_without_a_judge_nothing_is_computed_and_no_threshold_is_needed(rows):
    found = judge_with_controls(rows, answers_of(rows), judge_config(), seed=SEED, resamples=200)

    for name in found:
        for entry in found[name].values():
            assert entry == {
                "computed": False,
                "reason": "no judge configured (evaluate.judge.kind: none)",
            }


def test_a_judge_without_a_control_threshold_is_refused(rows):
    config = judge_config(
        kind="openai", endpoint="http://unused", model_name="x", min_control_accuracy=None
    )

    with pytest.raises(ValueError, match="min_control_accuracy is not set"):
        judge_with_controls(
            rows, answers_of(rows), config, seed=SEED, resamples=200, scorer=constant_judge
        )


def test_groundedness_without_any_context_has_no_control_and_does_not_count(rows):
    bare = [{**row, "context": None} for row in rows]
    score, _ = perfect_judge(bare)

    found = judge_with_controls(
        bare, answers_of(bare), CONFIG, seed=SEED, resamples=200, scorer=score
    )

    entry = found["sft"]["groundedness"]
    assert entry["computed"] is False
    assert "control could not be run" in entry["reason"] and "has a context" in entry["reason"]
    assert found["sft"]["fluency"]["control"]["passed"] is True


def test_the_evaluate_summary_reads_both_kinds_of_entry(rows):
    """What add_answer_scores would store goes through summarise_scores unchanged: a passing
    metric gets its interval, a failing one stays not computed with its reason."""
    from llm_pipeline.pipelines.evaluate.nodes import summarise_scores

    fluent_only = fluent_only_judge(rows)

    found = judge_with_controls(
        rows, answers_of(rows), CONFIG, seed=SEED, resamples=200, scorer=fluent_only
    )

    summary = summarise_scores(found, {}, parameters_of("evaluate"))

    fluency = summary["models"]["sft"]["fluency"]
    assert fluency["value"] == 5.0 and fluency["n"] == len(rows)
    relevance = summary["models"]["sft"]["relevance"]
    assert relevance["computed"] is False and "judge failed its control" in relevance["reason"]
    assert summary["comparisons"]["sft_vs_base"]["relevance"]["computed"] is False
    assert summary["comparisons"]["sft_vs_base"]["fluency"]["difference"] == 0.0


# --- the damage ---------------------------------------------------------------------------


def test_numbers_are_all_changed_and_keep_their_shape():
    rng = random.Random(0)
    text = "Express costs $5.95, returns are free within 30 days, call 1-800-555-0142."

    for _ in range(20):
        damaged = alter_numbers(text, rng, avoid="within 30 days")
        numbers = re.findall(r"\d+(?:[.,]\d+)*", damaged)
        assert len(numbers) == 6
        for before, after in zip(["5.95", "30", "1", "800", "555", "0142"], numbers, strict=True):
            assert after != before
            assert re.sub(r"\d", "0", after) == re.sub(r"\d", "0", before)
        assert "30 days" not in damaged


def test_facts_shared_with_the_context_are_changed_against_it(rows):
    pool = word_pool([row["context"] for row in rows if row["context"]])
    changed = 0
    for index, row in enumerate(rows[:-2]):
        damaged = contradict_context(row["reference"], row["context"], pool, random.Random(index))
        if damaged is None:
            continue
        changed += 1
        assert damaged != row["reference"]
        new_words = set(re.findall(r"\w+", damaged)) - set(re.findall(r"\w+", row["reference"]))
        assert new_words, damaged
        # What was put in does not come from this example's context.
        assert not {w.lower() for w in new_words} & set(re.findall(r"\w+", row["context"].lower()))
    assert changed >= len(rows) - 4


def test_shuffled_words_are_a_different_permutation():
    text = "Every tent ships within 3 business days from our warehouse."
    for seed in range(10):
        shuffled = shuffle_words(text, random.Random(seed))
        assert shuffled != text
        assert Counter(shuffled.split()) == Counter(text.split())
    assert shuffle_words("yes yes", random.Random(0)) is None


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[-1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def test_character_noise_changes_about_the_asked_share(rows):
    shares = []
    for index, row in enumerate(rows):
        text = row["reference"]
        noisy = character_noise(text, random.Random(index))
        assert noisy != text
        shares.append(edit_distance(text, noisy) / len(text))
    mean = sum(shares) / len(shares)
    # Each edit changes one or two characters (a swap is two), a few cancel out.
    assert NOISE_RATE * 0.8 < mean < NOISE_RATE * 2, mean
    lighter = character_noise(rows[0]["reference"], random.Random(0), rate=0.02)
    assert edit_distance(rows[0]["reference"], lighter) < edit_distance(
        rows[0]["reference"], character_noise(rows[0]["reference"], random.Random(0))
    )


def test_controls_are_seeded_and_relevance_pairs_another_reference(rows):
    first, again, other = (control_pairs(rows, seed) for seed in (SEED, SEED, SEED + 1))

    assert first == again
    assert first["fluency"] != other["fluency"]
    for pair in first["relevance"]:
        assert pair.intact == rows[pair.index]["reference"]
        assert pair.damaged != pair.intact
        assert pair.damaged in {row["reference"] for row in rows}


# --- self-judging ---------------------------------------------------------------------------


def model_folder(path, hidden_size=64, **extra):
    path.mkdir(parents=True)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 512}
    config.update(hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2, **extra)
    (path / "config.json").write_text(json.dumps(config))
    return path


def trained_from(path, start, **shape):
    folder = model_folder(path, **shape)
    (folder / "llm_pipeline_config.yaml").write_text(yaml.safe_dump({"model_dir": str(start)}))
    return folder


def test_models_trained_from_one_starting_model_share_it(tmp_path):
    base = model_folder(tmp_path / "base")
    sft = trained_from(tmp_path / "sft", base)
    aligned = trained_from(tmp_path / "aligned", sft)
    judge = trained_from(tmp_path / "judge", base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))

    assert shares_starting_model(judge, aligned)
    assert shares_starting_model(base, sft)
    assert shares_starting_model(adapter, aligned)


def test_models_of_another_size_or_name_do_not_share_a_starting_model(tmp_path):
    base = model_folder(tmp_path / "base")
    bigger = model_folder(tmp_path / "bigger", hidden_size=128)
    named = model_folder(tmp_path / "named", _name_or_path="HuggingFaceTB/SmolLM2-135M")
    renamed = model_folder(tmp_path / "renamed", _name_or_path="someone/other-135M")
    twin = model_folder(tmp_path / "twin")

    assert not shares_starting_model(trained_from(tmp_path / "sft", base), bigger)
    assert not shares_starting_model(named, renamed)
    # Same architecture and size, nothing telling them apart: taken as shared (a warning).
    assert shares_starting_model(base, twin)
    assert shares_starting_model(named, twin)
