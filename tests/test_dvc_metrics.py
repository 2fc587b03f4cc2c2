"""`dvc metrics diff` across commits reads the evaluate stage's metrics.json: nested figures
with intervals, comparisons, and metrics that were not computed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from support import PROJECT_ROOT, parameters_of, run_command, tool

from llm_pipeline.pipelines.evaluate.nodes import report_metrics, summarise_scores


def metrics_file(shift: float) -> str:
    """metrics.json as the evaluate stage writes it, the aligned model better by ``shift``."""
    rng = np.random.default_rng(0)
    held = rng.uniform(0.2, 0.6, 30)

    def scores(values):
        return {
            "perplexity": {"values": list(20 - 10 * values), "tokens": [10] * 30},
            "similarity": {"values": list(values)},
            "fluency": {"computed": False, "reason": "no judge configured"},
        }

    summary = summarise_scores(
        {"sft": scores(held), "aligned": scores(held + shift)},
        {},
        parameters_of("evaluate", bootstrap_resamples=200, seed=0),
    )
    canary = {"exposure": 1.0, "max_exposure": 9.97, "rank": 500, "regurgitated": False}
    metrics, _ = report_metrics(summary, {"method": "dpo"}, canary, {"enabled": False}, {})
    return json.dumps(metrics, indent=2)


def test_dvc_metrics_diff_shows_each_changed_figure_between_commits(tmp_path):
    shutil.copy2(PROJECT_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    for args in (["git", "init", "-q"], [tool("dvc"), "init", "-q"]):
        assert run_command(args, cwd=tmp_path).returncode == 0
    run_command([tool("dvc"), "config", "core.analytics", "false"], cwd=tmp_path)
    metrics = tmp_path / "data/08_reporting/metrics.json"
    metrics.parent.mkdir(parents=True)
    for shift, message in ((0.0, "first run"), (0.1, "second run")):
        metrics.write_text(metrics_file(shift))
        run_command(["git", "add", "-A", "--force"], cwd=tmp_path)
        assert run_command(["git", "commit", "-qm", message], cwd=tmp_path).returncode == 0

    result = run_command([tool("dvc"), "metrics", "diff", "HEAD~1", "--json"], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    changed = json.loads(result.stdout)["data/08_reporting/metrics.json"]
    similarity = changed["aligned.similarity.value"]
    assert similarity["new"] - similarity["old"] == pytest.approx(0.1, abs=1e-9)
    assert similarity["diff"] == pytest.approx(0.1, abs=1e-9)
    assert "aligned.similarity.high" in changed
    assert "comparisons.aligned_vs_sft.similarity.difference" in changed
    assert "sft.similarity.value" not in changed  # unchanged figures are not listed
    assert not [key for key in changed if "fluency" in key]

    shown = run_command([tool("dvc"), "metrics", "show", "--md"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "aligned.similarity.value" in shown.stdout
