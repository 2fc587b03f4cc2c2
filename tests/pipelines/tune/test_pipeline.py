"""The tune pipeline: registered, outside the default run, fed what the tuned stages read."""

from __future__ import annotations

from kedro.framework.project import configure_project

from llm_pipeline.pipelines.finetune import create_pipeline as finetune_pipeline
from llm_pipeline.pipelines.pretrain import create_pipeline as pretrain_pipeline
from llm_pipeline.pipelines.tune import create_pipeline as tune_pipeline


def test_tune_runs_only_when_named():
    from llm_pipeline.pipeline_registry import STAGES, register_pipelines

    configure_project("llm_pipeline")
    pipelines = register_pipelines()
    assert "tune.search_hyperparameters" in {node.name for node in pipelines["tune"].nodes}
    assert "tune.search_hyperparameters" not in {n.name for n in pipelines["__default__"].nodes}
    stage_nodes = {node.name for stage in STAGES for node in pipelines[stage].nodes}
    assert {node.name for node in pipelines["__default__"].nodes} == stage_nodes


def test_the_search_reads_everything_the_training_nodes_read():
    needed = set()
    for pipeline, node_name in (
        (pretrain_pipeline(), "pretrain_base_model"),
        (finetune_pipeline(), "finetune_model"),
    ):
        (node,) = [node for node in pipeline.nodes if node.name == node_name]
        needed |= set(node.inputs)
    assert needed <= set(tune_pipeline().inputs())
    assert tune_pipeline().outputs() == {"tuned_parameters", "tuning_trials"}
