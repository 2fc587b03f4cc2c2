"""Wiring of the pretrain stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.pretrain import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_document_tokenizer,
                ["validated_documents_train", "starting_model", "params:pretrain"],
                "tokenizer",
                name="train_document_tokenizer",
            ),
            Node(
                nodes.pretrain_base_model,
                [
                    "validated_documents_train",
                    "validated_documents_validation",
                    "tokenizer",
                    "starting_model",
                    "params:pretrain",
                    "params:launch",
                ],
                "base_model",
                name="pretrain_base_model",
            ),
        ]
    )
