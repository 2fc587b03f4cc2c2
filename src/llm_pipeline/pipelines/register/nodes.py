"""Register: decide whether the aligned model earns ``champion``, then register it.

The decision is a pure function of the evaluation and of the current champion's recorded
figures; the catalog's registry dataset does the logging, registering and aliasing.
"""

from __future__ import annotations

import logging
from typing import Any

from llm_pipeline.datasets import ModelFolder, RegistryCandidate

logger = logging.getLogger(__name__)

METRIC_TAG = "metric.{}"


def decide_promotion(
    evaluation_metrics: dict[str, dict], champion: dict[str, Any] | None, params: dict[str, Any]
) -> dict[str, Any]:
    """``challenger`` always; ``champion`` too when the candidate is at least as good.

    The candidate is the ``params.candidate`` model's figure on ``params.primary_metric``; the
    champion's is the tag recorded when it was registered.
    """
    metric = params["primary_metric"]
    higher_is_better = params["greater_is_better"]
    candidate = float(evaluation_metrics[params["candidate"]][metric])
    decision = {
        "primary_metric": metric,
        "greater_is_better": higher_is_better,
        "candidate_value": candidate,
        "champion_version": champion["version"] if champion else None,
        "champion_value": None,
    }
    if champion is None:
        promote, reason = True, "there is no champion yet"
    else:
        recorded = champion["tags"].get(METRIC_TAG.format(metric))
        if recorded is None:
            promote = False
            reason = f"champion v{champion['version']} has no recorded {metric} to compare with"
        else:
            decision["champion_value"] = float(recorded)
            champion_value = float(recorded)
            at_least_as_good = (
                candidate >= champion_value if higher_is_better else candidate <= champion_value
            )
            direction = "higher" if higher_is_better else "lower"
            promote = at_least_as_good
            verdict = "is at least as good as" if promote else "is worse than"
            reason = (
                f"{metric} {candidate:.4f} {verdict} champion v{champion['version']}'s "
                f"{champion_value:.4f} ({direction} is better)"
            )
    decision["promote"] = promote
    decision["aliases"] = ["challenger", "champion"] if promote else ["challenger"]
    decision["reason"] = reason
    logger.info("%s champion: %s", "Promoting to" if promote else "Not promoting to", reason)
    return decision


def prepare_registration(
    aligned_model: ModelFolder,
    decision: dict[str, Any],
    evaluation_metrics: dict[str, dict],
    validation_report: dict[str, Any],
    params: dict[str, Any],
) -> RegistryCandidate:
    """The aligned model with its aliases and the tags that explain them."""
    figures = evaluation_metrics[params["candidate"]]
    # repr reads back as the very same float, so the next comparison is exact.
    tags = {METRIC_TAG.format(name): repr(float(value)) for name, value in figures.items()}
    tags.update(
        {
            "promotion.decision": "champion" if decision["promote"] else "challenger only",
            "promotion.reason": decision["reason"],
            "data_contracts": "passed" if validation_report["success"] else "failed",
            "training.method": "pretrain + sft + dpo",
        }
    )
    return RegistryCandidate(model=aligned_model, aliases=tuple(decision["aliases"]), tags=tags)
