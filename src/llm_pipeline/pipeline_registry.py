"""The stages, in the order the default run takes them."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

STAGES = ("ingest", "validate", "index", "pretrain", "finetune", "align", "evaluate", "register")


def register_pipelines() -> dict[str, Pipeline]:
    """One pipeline per stage, found in ``pipelines/<stage>``; ``__default__`` is all of them.

    Pipelines that are not stages are registered too but run only when named: ``tune`` (a
    hyperparameter search that trains many times), ``feedback`` (AI-judged preference pairs
    from the fine-tuned model, for the next run to train on): ``kedro run --pipeline feedback``.

    Each pipeline is a namespace of its own name, so kedro-viz draws every stage as a group
    that opens into its nodes. Only the nodes are named after it (``finetune.finetune_model``,
    as ``kedro run --nodes`` takes them); datasets and parameters keep their catalog names.

    ``kedro run --pipeline ingest`` makes Kedro import only that stage's modules, so the
    default pipeline is assembled only when every stage was loaded.
    """
    pipelines = {
        name: Pipeline(pipeline, namespace=name, prefix_datasets_with_namespace=False)
        for name, pipeline in find_pipelines(raise_errors=True).items()
        if name != "__default__"
    }
    if all(stage in pipelines for stage in STAGES):
        pipelines["__default__"] = sum((pipelines[stage] for stage in STAGES), Pipeline([]))
    return pipelines
