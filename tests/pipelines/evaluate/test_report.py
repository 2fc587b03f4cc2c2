"""The evaluation report: table, Markdown, charts with intervals, answers side by side."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from llm_pipeline.pipelines.evaluate.report import (
    answers_side_by_side,
    metric_charts,
    metrics_markdown,
    metrics_table,
)

NOT_JUDGED = {"computed": False, "reason": "no judge configured"}
RESULTS = {
    "base": {
        "perplexity": {"value": 30.0, "low": 27.5, "high": 33.0, "n": 50},
        "similarity": {"value": 0.20, "low": 0.15, "high": 0.26, "n": 50},
        "fluency": NOT_JUDGED,
    },
    "aligned": {
        "perplexity": {"value": 2.5, "low": 2.25, "high": 2.75, "n": 50},
        "similarity": {"value": 0.55, "low": 0.5, "high": 0.61, "n": 50},
        "fluency": NOT_JUDGED,
    },
}
DIRECTIONS = {"perplexity": False, "similarity": True, "fluency": True}
COMPARISONS = [
    {
        "metric": "similarity",
        "model": "aligned",
        "against": "base",
        "difference": 0.35,
        "low": 0.3,
        "high": 0.4,
        "significant": True,
        "better": True,
    },
    {
        "metric": "perplexity",
        "model": "aligned",
        "against": "base",
        "difference": -0.01,
        "low": -0.2,
        "high": 0.15,
        "significant": False,
        "better": None,
    },
]


def test_the_table_has_a_row_per_model_and_metric_and_no_number_for_what_was_not_computed():
    table = metrics_table(RESULTS, DIRECTIONS)

    assert len(table) == 6
    row = table[(table.model == "aligned") & (table.metric == "perplexity")].iloc[0]
    assert (row.value, row.low, row.high, row.n) == (2.5, 2.25, 2.75, 50)
    assert not row.greater_is_better and row.computed
    fluency = table[table.metric == "fluency"]
    assert not fluency.computed.any()
    assert fluency.value.isna().all()
    assert set(fluency.reason) == {"no judge configured"}
    assert pd.read_csv(io.StringIO(table.to_csv(index=False))).shape == table.shape


def test_the_markdown_gives_intervals_reasons_and_whether_differences_exceed_them():
    text = metrics_markdown(RESULTS, DIRECTIONS, COMPARISONS)

    assert "| aligned | 2.5 [2.25, 2.75] | 0.55 [0.5, 0.61] | not computed |" in text
    assert "perplexity ↓" in text and "similarity ↑" in text
    assert "- fluency: not computed (no judge configured)" in text
    assert "aligned vs base: similarity +0.35 [+0.3, +0.4], better, beyond its interval" in text
    assert "perplexity -0.01 [-0.2, +0.15], within its interval" in text


def test_the_charts_have_a_panel_per_metric_with_the_intervals_as_error_bars():
    figure = metric_charts(RESULTS, DIRECTIONS)

    panels = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in panels] == [
        "perplexity (lower is better)",
        "similarity (higher is better)",
        "fluency (higher is better)",
    ]
    similarity = panels[1]
    assert [bar.get_height() for bar in similarity.patches] == pytest.approx([0.20, 0.55])
    (caps_low, caps_high) = [line.get_ydata() for line in similarity.lines[:2]]
    assert list(caps_low) == pytest.approx([0.15, 0.5])
    assert list(caps_high) == pytest.approx([0.26, 0.61])
    assert len(panels[2].patches) == 0
    assert "not computed:\nno judge configured" in panels[2].texts[0].get_text()

    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png.getvalue()) > 10_000


@pytest.mark.parametrize("metrics", [1, 5, 12])
def test_the_charts_fit_any_number_of_metrics(metrics):
    results = {
        model: {f"m{i}": {"value": 1.0, "low": 0.5, "high": 1.5, "n": 3} for i in range(metrics)}
        for model in ("a", "b")
    }

    figure = metric_charts(results, {})

    assert sum(axis.get_visible() for axis in figure.axes) == metrics
    assert len(figure.axes) == (4 * math.ceil(metrics / 4) if metrics > 4 else metrics)


def test_answers_are_escaped_and_set_beside_the_reference():
    samples = pd.DataFrame(
        [
            {
                "id": "val-1",
                "prompt": "Is <b>this</b> ok?",
                "reference": "Yes & no.",
                "base": "<script>alert(1)</script>",
                "aligned": "Fine.",
            }
        ]
    )

    page = answers_side_by_side(samples, ["base", "aligned"])

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<th>base</th><th>aligned</th>" in page
    assert "<td>Yes &amp; no.</td><td>&lt;script&gt;" in page


def test_the_markdown_gives_the_judges_controls_and_names_the_self_judged_models():
    passed = {"value": 0.95, "low": 0.88, "high": 1.0, "n": 40, "passed": True, "threshold": 0.8}
    failed = {"value": 0.6, "low": 0.45, "high": 0.75, "n": 40, "passed": False, "threshold": 0.8}
    unreliable = {"computed": False, "reason": "judge failed its control", "control": failed}
    judged = {
        "base": {"fluency": {**RESULTS["base"]["similarity"], "control": passed}},
        "aligned": {
            "fluency": {**RESULTS["aligned"]["similarity"], "control": passed, "self_judged": True},
            "relevance": {**unreliable, "self_judged": True},
        },
    }

    text = metrics_markdown(judged, {"fluency": True, "relevance": True}, [])

    assert "- fluency: control accuracy 0.95 [0.88, 1] of 40 pairs, threshold 0.8: passed" in text
    assert (
        "- relevance: control accuracy 0.6 [0.45, 0.75] of 40 pairs, threshold 0.8: failed" in text
    )
    assert "- Self-judged: aligned grew from the judge's own model" in text
    assert "base grew" not in text
    assert "## Judge" not in metrics_markdown(RESULTS, DIRECTIONS, COMPARISONS)
