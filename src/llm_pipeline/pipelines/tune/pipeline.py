"""Wiring of the tune pipeline: what the stages it can tune read, and the tuned parameters."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.tune import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.search_hyperparameters,
                {
                    "documents_train": "validated_documents_train",
                    "documents_validation": "validated_documents_validation",
                    "tokenizer": "tokenizer",
                    "conversations_train": "validated_conversations_train",
                    "conversations_validation": "validated_conversations_validation",
                    "pretrained_model": "base_model",
                    "starting_model": "starting_model",
                    "finetune_starting_model": "finetune_starting_model",
                    "passage_index": "passage_index",
                    "params": "params:tune",
                    "pretrain_params": "params:pretrain",
                    "finetune_params": "params:finetune",
                    "retrieval_params": "params:retrieval",
                    "launch_params": "params:launch",
                },
                ["tuned_parameters", "tuning_trials"],
                name="search_hyperparameters",
            ),
        ]
    )
