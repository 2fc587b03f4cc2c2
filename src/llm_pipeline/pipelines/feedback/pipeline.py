"""Wiring of the feedback pipeline: prompts, sampled answers, judgement, new preference pairs,
and the same answers queued for human review.

The answers are sampled and judged with the passages retrieved for each prompt, as the models
are trained and evaluated; the pairs keep the plain prompt (align grounds it again).

Not part of the default run: ``kedro run --pipeline feedback`` after a run that made
``sft_model`` and ``reward_model`` (under DPO only with ``align.reward_model_with_dpo``); the
next ``kedro run`` ingests the pairs it wrote.
"""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.feedback import nodes


def create_pipeline(**kwargs) -> Pipeline:
    params = "params:feedback"
    return Pipeline(
        [
            # Its only inputs come from the catalog: Kedro runs it first, before minutes of
            # sampling, so a judge that cannot judge stops the run at once.
            Node(
                nodes.check_judge,
                ["reward_model", params],
                "feedback_judge",
                name="check_judge",
            ),
            Node(
                nodes.select_prompts,
                ["validated_preferences_train", "validated_conversations_train", params],
                "feedback_prompts",
                name="select_feedback_prompts",
            ),
            Node(
                nodes.ground_prompts,
                ["feedback_prompts", "passage_index", "params:retrieval"],
                "grounded_feedback_prompts",
                name="ground_feedback_prompts",
            ),
            Node(
                nodes.sample_candidate_answers,
                ["grounded_feedback_prompts", "sft_model", params],
                "feedback_answers",
                name="sample_answers",
            ),
            Node(
                nodes.judge_answers,
                ["grounded_feedback_prompts", "feedback_answers", "feedback_judge", params],
                "feedback_judgement",
                name="judge_answers",
            ),
            Node(
                nodes.make_preference_pairs,
                ["feedback_prompts", "feedback_answers", "feedback_judgement", params],
                ["ai_feedback_pairs", "ai_feedback_report"],
                name="make_preference_pairs",
            ),
            Node(
                nodes.build_review_queue,
                ["feedback_prompts", "feedback_answers", "sft_model", params],
                "review_queue",
                name="build_review_queue",
            ),
        ]
    )
