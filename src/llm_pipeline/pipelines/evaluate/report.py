"""The evaluation report people read: a table of every model and metric with its interval,
bar charts with the intervals, and answers side by side with the references.

Inputs are the evaluate stage's figures: ``results[model][metric]`` is either
``{"value", "low", "high", "n"}`` or ``{"computed": False, "reason"}``; ``directions[metric]``
is True when higher is better; ``comparisons`` are paired differences between two models.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from llm_pipeline.evaluation.statistics import is_computed

TABLE_COLUMNS = [
    "model",
    "metric",
    "value",
    "low",
    "high",
    "n",
    "greater_is_better",
    "computed",
    "reason",
]


def metrics_table(results: dict[str, dict], directions: dict[str, bool]) -> pd.DataFrame:
    """One row per model and metric (long format, for CSV and for pivoting)."""
    rows = []
    for model, figures in results.items():
        for metric, figure in figures.items():
            computed = is_computed(figure)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "value": figure["value"] if computed else math.nan,
                    "low": figure["low"] if computed else math.nan,
                    "high": figure["high"] if computed else math.nan,
                    "n": figure["n"] if computed else 0,
                    "greater_is_better": directions.get(metric),
                    "computed": computed,
                    "reason": "" if computed else figure.get("reason", ""),
                }
            )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _figure_text(figure: dict[str, Any]) -> str:
    if not is_computed(figure):
        return "not computed"
    return f"{figure['value']:.4g} [{figure['low']:.4g}, {figure['high']:.4g}]"


def judge_notes(results: dict[str, dict]) -> list[str]:
    """The judge's control figure per judged metric, and which models it judged its own kind
    of answer in (grown from its model); no lines when nothing was judged."""
    controls: dict[str, dict[str, Any]] = {}
    own: list[str] = []
    for model, figures in results.items():
        for metric, figure in figures.items():
            if isinstance(figure.get("control"), dict):
                controls.setdefault(metric, figure["control"])
            if figure.get("self_judged") and model not in own:
                own.append(model)
    if not controls:
        return []
    lines = ["", "## Judge", ""]
    for metric, control in controls.items():
        if not is_computed(control):
            lines.append(f"- {metric}: no control ({control.get('reason', '')})")
            continue
        verdict = "passed" if control.get("passed") else "failed: not reliable, not scored"
        lines.append(
            f"- {metric}: control accuracy {_figure_text(control)} of {control['n']} pairs, "
            f"threshold {control.get('threshold')}: {verdict}"
        )
    if own:
        lines.append(
            f"- Self-judged: {', '.join(own)} grew from the judge's own model; a judge favours "
            "text like its own, so their judged figures may be biased upwards against others."
        )
    return lines


def metrics_markdown(
    results: dict[str, dict], directions: dict[str, bool], comparisons: list[dict]
) -> str:
    """Models as rows, metrics as columns ("value [low, high]"), the reasons of what was not
    computed, and whether each comparison's difference is larger than its interval."""
    metrics = list(dict.fromkeys(metric for figures in results.values() for metric in figures))
    arrows = {metric: "↑" if directions.get(metric, True) else "↓" for metric in metrics}
    lines = [
        "# Evaluation",
        "",
        "Each figure with its bootstrap 95% interval; ↑ higher is better, ↓ lower is better.",
        "",
        "| model | " + " | ".join(f"{metric} {arrows[metric]}" for metric in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    reasons: dict[str, str] = {}
    for model, figures in results.items():
        cells = []
        for metric in metrics:
            figure = figures.get(metric, {"computed": False, "reason": "not measured"})
            cells.append(_figure_text(figure))
            if not is_computed(figure):
                reasons.setdefault(metric, figure.get("reason", ""))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if reasons:
        lines += [
            "",
            *(f"- {metric}: not computed ({reason})" for metric, reason in reasons.items()),
        ]
    lines += judge_notes(results)
    if comparisons:
        lines += ["", "## Comparisons (paired bootstrap)", ""]
        for found in comparisons:
            verdict = (
                "within its interval"
                if not found["significant"]
                else "better, beyond its interval"
                if found["better"]
                else "worse, beyond its interval"
            )
            lines.append(
                f"- {found['model']} vs {found['against']}: {found['metric']} "
                f"{found['difference']:+.4g} [{found['low']:+.4g}, {found['high']:+.4g}], {verdict}"
            )
    return "\n".join(lines) + "\n"


def metric_charts(results: dict[str, dict], directions: dict[str, bool]) -> Any:
    """One panel per metric, one bar per model with its 95% interval as the error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(metric for figures in results.values() for metric in figures))
    models = list(results)
    columns = min(4, max(len(metrics), 1))
    rows = math.ceil(max(len(metrics), 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(metrics) :]:
        axis.set_visible(False)
    for axis, metric in zip(axes.flat, metrics, strict=False):
        direction = "higher is better" if directions.get(metric, True) else "lower is better"
        axis.set_title(f"{metric} ({direction})", fontsize=9)
        shown = [m for m in models if is_computed(results[m].get(metric, {"computed": False}))]
        if not shown:
            reason = next(
                (results[m][metric].get("reason", "") for m in models if metric in results[m]), ""
            )
            axis.text(
                0.5,
                0.5,
                f"not computed:\n{reason}",
                ha="center",
                va="center",
                wrap=True,
                fontsize=8,
                transform=axis.transAxes,
            )
            axis.set_xticks([])
            axis.set_yticks([])
            continue
        values = [results[m][metric]["value"] for m in shown]
        errors = [
            [v - results[m][metric]["low"] for m, v in zip(shown, values, strict=True)],
            [results[m][metric]["high"] - v for m, v in zip(shown, values, strict=True)],
        ]
        axis.bar(shown, values, yerr=errors, capsize=4, color="#4c72b0")
        axis.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    return figure


def answers_side_by_side(samples: pd.DataFrame, models: list[str]) -> str:
    """An HTML page: per example the prompt, the reference and each model's answer in columns.
    Everything is escaped: answers are model output."""
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = []
    for row in samples.to_dict(orient="records"):
        answers = "".join(f"<td>{html.escape(str(row.get(m, '')))}</td>" for m in models)
        body.append(
            f"<tr><td>{html.escape(str(row.get('id', '')))}</td>"
            f"<td>{html.escape(str(row.get('prompt', '')))}</td>"
            f"<td>{html.escape(str(row.get('reference', '')))}</td>{answers}</tr>"
        )
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}"
        "th{background:#f0f0f0}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation samples</title><style>{style}</style></head><body>"
        "<h1>Answers beside the references</h1>"
        f"<table><tr><th>id</th><th>prompt</th><th>reference</th>{head}</tr>"
        + "".join(body)
        + "</table></body></html>\n"
    )
