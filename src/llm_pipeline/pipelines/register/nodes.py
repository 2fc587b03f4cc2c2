"""Register: the quality gate that decides whether the candidate earns ``champion``, the
lineage and model card that travel with it, and the registration itself.

The gate is a pure function of the evaluation, which scored the candidate and the current
champion on the same validation examples, with paired bootstrap intervals of their differences:
- the primary metric must be better than the champion's by more than its interval;
- no other computed metric may be worse than the champion's by more than its tolerance, on the
  point estimate of the paired difference, with that difference's interval excluding zero on the
  worse side (a metric without a paired interval: the point estimates alone);
- with ``require_approval`` a person confirms the promotion afterwards
  (``llm_pipeline.cli.champion``).
Every version gets ``challenger``; the decision and all its reasons are tags on the version.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.datasets import Folder, ModelFolder, RegistryCandidate
from llm_pipeline.evaluation.statistics import DIRECTIONS, is_computed
from llm_pipeline.training.jobs import LINEAGE_FILE

logger = logging.getLogger(__name__)

METRIC_TAG = "metric.{}"
RETRIEVAL_TAG = "serving.retrieval"
CHAMPION = "champion"
STATUS_CHAMPION = "champion"
STATUS_CHALLENGER = "challenger only"
STATUS_AWAITING = "awaiting approval"


class RegisterConfig(BaseModel):
    """``register:`` parameters."""

    model_config = ConfigDict(extra="forbid")

    candidate: str
    primary_metric: str
    tolerance: float = Field(ge=0)
    tolerances: dict[str, float]
    require_approval: bool
    weights: Literal["adapters", "full"]


def decide_promotion(
    evaluation_metrics: dict[str, Any], champion: dict[str, Any] | None, params: dict[str, Any]
) -> dict[str, Any]:
    """The gate's verdict: whether the candidate may become champion, and every reason."""
    config = RegisterConfig.model_validate(params)
    metric = config.primary_metric
    figures = evaluation_metrics[config.candidate]
    reasons: list[str] = []
    if not is_computed(figures.get(metric, {"computed": False, "reason": "not measured"})):
        eligible = False
        reasons.append(f"the primary metric {metric} of the candidate was not computed")
    elif champion is None:
        eligible = True
        reasons.append("there is no champion yet")
    elif CHAMPION not in evaluation_metrics:
        eligible = False
        reasons.append(
            f"champion v{champion['version']} was not evaluated on this run's validation set"
        )
    else:
        eligible, reasons = _beats_champion(evaluation_metrics, champion, config)
    if is_computed(figures.get(metric, {"computed": False})):
        beats_base, reason = _beats_base(evaluation_metrics, config)
        eligible = eligible and beats_base
        reasons.append(reason)
    promote = eligible and not config.require_approval
    if eligible and config.require_approval:
        reasons.append("a person must approve (register.require_approval)")
    status = STATUS_CHAMPION if promote else STATUS_AWAITING if eligible else STATUS_CHALLENGER
    decision = {
        "candidate": config.candidate,
        "primary_metric": metric,
        "champion_version": champion["version"] if champion else None,
        "eligible": eligible,
        "promote": promote,
        "status": status,
        "aliases": ["challenger", CHAMPION] if promote else ["challenger"],
        "reasons": reasons,
        "reason": "; ".join(reasons),
    }
    logger.info("Quality gate: %s. %s", status, decision["reason"])
    return decision


def _beats_champion(
    evaluation_metrics: dict[str, Any], champion: dict[str, Any], config: RegisterConfig
) -> tuple[bool, list[str]]:
    """The primary metric better beyond its interval, and no other metric worse past its
    tolerance beyond its interval."""
    version = champion["version"]
    comparisons = evaluation_metrics["comparisons"][f"{config.candidate}_vs_{CHAMPION}"]
    primary = comparisons.get(config.primary_metric, {"computed": False})
    reasons = []
    if primary.get("computed") is False:
        return False, [f"{config.primary_metric} could not be compared with champion v{version}"]
    interval = _difference(primary)
    primary_ok = primary["better"] is True
    if primary_ok:
        reasons.append(f"{config.primary_metric} {interval} against champion v{version}: better")
    elif primary["better"] is False:
        reasons.append(f"{config.primary_metric} {interval} against champion v{version}: worse")
    else:
        reasons.append(
            f"{config.primary_metric} {interval} against champion v{version}: the difference is "
            "within its interval"
        )
    regressions = []
    for metric in _other_metrics(evaluation_metrics, config):
        blocks, reason = _judge_other_metric(
            metric,
            evaluation_metrics[config.candidate][metric]["value"],
            evaluation_metrics[CHAMPION][metric]["value"],
            comparisons.get(metric, {"computed": False, "reason": "no comparison"}),
            config.tolerances.get(metric, config.tolerance),
            version,
        )
        if blocks:
            regressions.append(reason)
        elif reason:
            reasons.append(reason)
    reasons += regressions or [
        "no other metric worse than the champion's beyond its tolerance "
        f"(default {config.tolerance:.1%}) and its interval"
    ]
    return primary_ok and not regressions, reasons


def _other_metrics(evaluation_metrics: dict[str, Any], config: RegisterConfig) -> list[str]:
    """The metrics besides the primary one computed for both the candidate and the champion."""
    held = evaluation_metrics[CHAMPION]
    return [
        metric
        for metric, figure in evaluation_metrics[config.candidate].items()
        if metric != config.primary_metric
        and is_computed(figure)
        and is_computed(held.get(metric, {"computed": False}))
    ]


def _judge_other_metric(
    metric: str,
    candidate: float,
    held: float,
    compared: dict[str, Any],
    tolerance: float,
    version: int,
) -> tuple[bool, str | None]:
    """Whether a metric besides the primary one blocks the promotion, and what to say of it.

    It blocks when it is worse than the champion's by more than ``tolerance`` (a fraction of the
    champion's figure) on its paired point estimate AND its paired interval excludes zero on the
    worse side: a regression the examples show, not noise, and larger than tolerated. Without a
    paired interval the point estimates alone decide, and the reason says so."""
    if compared.get("computed") is False or not {"difference", "low", "high"} <= set(compared):
        greater_is_better = DIRECTIONS[metric]
        worse_by = (held - candidate) if greater_is_better else (candidate - held)
        share = _share(worse_by, held)
        verdict = (
            f"is {share:.1%} worse than champion v{version}'s"
            if share > tolerance
            else f"is within its tolerance of champion v{version}'s"
        )
        return share > tolerance, (
            f"{metric} {verdict} ({candidate:.4g} against {held:.4g}; tolerance "
            f"{tolerance:.1%}), judged on the point estimates alone: no paired interval "
            f"({compared.get('reason', 'the comparison has none')})"
        )
    difference = compared["difference"]
    share = _share(-difference if compared["greater_is_better"] else difference, held)
    if share <= tolerance:
        return False, None
    if compared["better"] is False:
        return True, (
            f"{metric} is {share:.1%} worse than champion v{version}'s (tolerance "
            f"{tolerance:.1%}) and its interval excludes zero: {_difference(compared)}"
        )
    return False, (
        f"{metric} is {share:.1%} worse than champion v{version}'s on its point estimate "
        f"(tolerance {tolerance:.1%}), but its interval does not show a regression: "
        f"{_difference(compared)}"
    )


def _share(worse_by: float, held: float) -> float:
    """How much worse, as a fraction of the champion's figure (a figure of 0: any is infinite)."""
    if held:
        return worse_by / abs(held)
    return float("inf") if worse_by > 0 else 0.0


def _beats_base(evaluation_metrics: dict[str, Any], config: RegisterConfig) -> tuple[bool, str]:
    """The primary metric better than the starting model's (``base``) beyond its interval:
    a candidate that is not is no better than what the user had without this project."""
    metric = config.primary_metric
    if config.candidate == "base":
        return True, "the candidate is the base model itself"
    compared = (
        evaluation_metrics.get("comparisons", {})
        .get(f"{config.candidate}_vs_base", {})
        .get(metric, {"computed": False})
    )
    if compared.get("computed") is False:
        return False, f"{metric} could not be compared with the base model"
    verdict = {True: "better", False: "worse", None: "the difference is within its interval"}
    return compared["better"] is True, (
        f"{metric} {_difference(compared)} against the base model: {verdict[compared['better']]}"
    )


def _difference(compared: dict[str, Any]) -> str:
    return f"{compared['difference']:+.4g} [{compared['low']:+.4g}, {compared['high']:+.4g}]"


def prepare_registration(
    aligned_model: ModelFolder,
    base_model: ModelFolder,
    sft_model: ModelFolder,
    reward_model: ModelFolder,
    decision: dict[str, Any],
    evaluation_metrics: dict[str, Any],
    validation_report: dict[str, Any],
    lineage: dict[str, Any],
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
) -> RegistryCandidate:
    """The candidate with its aliases, the tags that explain them and trace it back to its data,
    code and runs, and its model card; with the passage index it was trained with, unless
    retrieval is off (then it answers the chat as it comes, as it was trained)."""
    from llm_pipeline.retrieval import RetrievalConfig

    retrieval = RetrievalConfig.model_validate(retrieval_params)
    grounded = retrieval.enabled
    config = RegisterConfig.model_validate(params)
    figures = evaluation_metrics[config.candidate]
    tags: dict[str, str] = {}
    for name, figure in figures.items():
        if is_computed(figure):
            # repr reads back as the very same float.
            tags[METRIC_TAG.format(name)] = repr(float(figure["value"]))
            tags[f"metric.{name}.interval"] = f"[{figure['low']:.6g}, {figure['high']:.6g}]"
        else:
            tags[METRIC_TAG.format(name)] = f"not computed: {figure['reason']}"
    training_models = {
        "pretrain": base_model,
        "finetune": sft_model,
        "reward": reward_model,
        "align": aligned_model,
    }
    runs = training_runs(training_models)
    method = evaluation_metrics.get("alignment", {}).get("method", "unknown")
    tags.update(
        {
            RETRIEVAL_TAG: retrieval_tag(retrieval) if grounded else "off",
            "promotion.decision": decision["status"],
            "promotion.eligible": str(decision["eligible"]).lower(),
            "promotion.reason": decision["reason"],
            "promotion.previous_champion": str(decision["champion_version"] or "none"),
            "promotion.approval": "pending" if decision["status"] == STATUS_AWAITING else "none",
            "data_contracts": "passed" if validation_report["success"] else "failed",
            "validation.expectations": _expectations_summary(validation_report),
            "training.method": f"pretrain + sft ({_finetune_method(training_models)}) + {method}",
            "lineage.git_commit": lineage["git_commit"],
            "lineage.git_dirty": str(lineage["git_dirty"]).lower(),
            **{f"lineage.data.{path}": md5 for path, md5 in sorted(lineage["data_md5"].items())},
            **{f"lineage.dvc.{path}": md5 for path, md5 in sorted(lineage["dvc"].items())},
            **{f"lineage.run.{stage}": run for stage, run in runs.items()},
        }
    )
    card = model_card(
        decision, evaluation_metrics, validation_report, lineage, runs, tags, config.weights
    )
    return RegistryCandidate(
        model=aligned_model,
        aliases=tuple(decision["aliases"]),
        tags=tags,
        card=card,
        expected_champion=decision["champion_version"],
        index=passage_index.path if grounded else None,
        weights=config.weights,
    )


def training_runs(training_models: dict[str, ModelFolder]) -> dict[str, str]:
    """The MLflow run that trained each model folder, as its lineage file records it."""
    runs = {}
    for stage, folder in training_models.items():
        if (folder.path / LINEAGE_FILE).exists():
            runs[stage] = folder.read_json(LINEAGE_FILE).get("mlflow_run_id") or "none"
    return runs


def _finetune_method(training_models: dict[str, ModelFolder]) -> str:
    sft = training_models.get("finetune")
    return str(sft.read_run_config().get("method", "full")) if sft else "unknown"


def _expectations_summary(validation_report: dict[str, Any]) -> str:
    results = validation_report.get("datasets", [])
    passed = sum(r.get("successful_expectations", 0) for r in results)
    total = sum(r.get("evaluated_expectations", 0) for r in results)
    return f"{passed}/{total} expectations on {len(results)} datasets"


def model_card(
    decision: dict[str, Any],
    evaluation_metrics: dict[str, Any],
    validation_report: dict[str, Any],
    lineage: dict[str, Any],
    runs: dict[str, str],
    tags: dict[str, str],
    weights: str = "full",
) -> str:
    """README.md of the registered model: data, method, metrics, intended use and limits."""
    models = [m for m in ("base", "adapted", "sft", "aligned", CHAMPION) if m in evaluation_metrics]
    metrics = sorted({metric for m in models for metric in evaluation_metrics[m]})
    header = "| metric | " + " | ".join(models) + " |"
    rows = [header, "|" + " --- |" * (len(models) + 1)]
    for metric in metrics:
        cells = []
        for m in models:
            figure = evaluation_metrics[m].get(metric, {"computed": False, "reason": "-"})
            cells.append(
                f"{figure['value']:.4g} [{figure['low']:.4g}, {figure['high']:.4g}]"
                if is_computed(figure)
                else "not computed"
            )
        rows.append(f"| {metric} | " + " | ".join(cells) + " |")
    not_computed = {
        metric: figure["reason"]
        for metric, figure in evaluation_metrics[decision["candidate"]].items()
        if not is_computed(figure)
    }
    canary = evaluation_metrics.get("canary", {})
    data = "\n".join(
        f"- `{path}`: md5 `{md5}`" for path, md5 in sorted(lineage["data_md5"].items())
    )
    lines = [
        "# llm-pipeline model card",
        "",
        f"**Status:** {decision['status']}. {decision['reason']}.",
        "",
        "## Method",
        f"{tags['training.method']}: "
        + (
            "an existing model (the base model above) adapted to the organisation's documents "
            "by continued pretraining"
            if "adapted" in evaluation_metrics
            else "a tokenizer and a causal language model pretrained from scratch on the "
            "organisation's documents"
        )
        + ", fine-tuned on its conversations and aligned on its preference pairs (llm-pipeline). "
        + (
            "Passages retrieved from the documents are put into every prompt, in training, "
            f"evaluation and serving: {tags[RETRIEVAL_TAG]} (`artifacts/passage_index`), so "
            "the registered model answers from the documents it was trained with."
            if tags[RETRIEVAL_TAG] != "off"
            else "No passages in its prompts (retrieval off)."
        ),
        "",
        "## Data",
        f"Git commit `{lineage['git_commit']}`"
        + (" (with uncommitted changes)" if lineage["git_dirty"] else "")
        + f". Data contracts: {tags['data_contracts']} ({tags['validation.expectations']}).",
        "",
        data or "- (no data files hashed)",
        "",
        "Training runs (MLflow): " + ", ".join(f"{k} `{v}`" for k, v in runs.items()),
        "",
        "## Weights",
        (
            "Registered as the LoRA adapters its stages trained, over a base registered once "
            "as a version of `<name>-base` and pinned by its SHA-256, when every stage after "
            "that base trained LoRA; otherwise as full weights. The version's `weights` and "
            "`base.*` tags say which."
            if weights == "adapters"
            else "Registered as full weights (`register.weights: full`)."
        ),
        "",
        "## Evaluation",
        "Held-out validation set; each figure with its bootstrap 95% interval.",
        "",
        *rows,
        "",
        *(f"- {metric} not computed: {reason}" for metric, reason in not_computed.items()),
        "",
        "## Memorisation",
        (
            f"Canary exposure {canary['exposure']:.2f} of at most {canary['max_exposure']:.2f}; "
            f"repeats the planted secret: {'yes' if canary['regurgitated'] else 'no'}."
            if "exposure" in canary
            else f"Not measured: {canary.get('reason', 'no canary')}."
        ),
        "",
        "## Intended use and limits",
        "A small assistant for the organisation's own domain, trained only on the data above. "
        "It can state wrong facts fluently and knows nothing outside its training data; answers "
        "that matter must be checked by a person. It was not evaluated for safety beyond the "
        "figures above. Not for decisions about people.",
        "",
    ]
    return "\n".join(lines)


def retrieval_tag(retrieval: Any) -> str:
    """What the registered model puts into its prompts from the index it carries."""
    given = []
    if retrieval.top_k:
        given.append(f"the top {retrieval.top_k} passages")
    if retrieval.past_answers:
        count = retrieval.past_answers
        given.append("the first past answer" if count == 1 else f"{count} past answers")
    return f"{' and '.join(given)} of the index registered with the model"
