"""Wiring of the evaluate stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.evaluate import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.evaluate_models,
                [
                    "validated_validation_set",
                    "starting_model",
                    "base_model",
                    "sft_model",
                    "aligned_model",
                    "champion_model_folder",
                    "passage_index",
                    "params:evaluate",
                    "params:retrieval",
                ],
                ["evaluation_scores", "evaluation_samples", "validation_answers"],
                name="evaluate_models",
            ),
            Node(
                nodes.score_prompt_variants,
                [
                    "validated_validation_set",
                    "aligned_model",
                    "passage_index",
                    "params:evaluate",
                    "params:retrieval",
                ],
                "prompt_variant_scores",
                name="score_prompt_variants",
            ),
            Node(
                nodes.summarise_scores,
                ["evaluation_scores", "prompt_variant_scores", "params:evaluate"],
                "evaluation_summary",
                name="summarise_scores",
            ),
            Node(
                nodes.measure_alignment,
                [
                    "validated_preferences_validation",
                    "validated_validation_set",
                    "validation_answers",
                    "sft_model",
                    "aligned_model",
                    "reward_model",
                    "passage_index",
                    "params:evaluate",
                    "params:retrieval",
                ],
                "alignment_evidence",
                name="measure_alignment",
            ),
            Node(
                nodes.measure_canary_exposure,
                ["aligned_model", "params:evaluate"],
                "canary_exposure",
                name="measure_canary_exposure",
            ),
            Node(
                nodes.measure_retrieval,
                [
                    "validated_validation_set",
                    "passage_index",
                    "params:evaluate",
                    "params:retrieval",
                ],
                "retrieval_evidence",
                name="measure_retrieval",
            ),
            Node(
                nodes.measure_document_perplexity,
                [
                    "validated_documents_validation",
                    "starting_model",
                    "base_model",
                    "params:evaluate",
                ],
                "document_perplexity",
                name="measure_document_perplexity",
            ),
            Node(
                nodes.report_metrics,
                [
                    "evaluation_summary",
                    "alignment_evidence",
                    "canary_exposure",
                    "retrieval_evidence",
                    "document_perplexity",
                ],
                ["evaluation_metrics", "evaluation_metrics_tracked"],
                name="report_metrics",
            ),
            Node(
                nodes.draw_evaluation_report,
                ["evaluation_summary", "evaluation_samples"],
                [
                    "evaluation_table",
                    "evaluation_report",
                    "evaluation_charts",
                    "evaluation_samples_page",
                ],
                name="draw_evaluation_report",
            ),
        ]
    )
