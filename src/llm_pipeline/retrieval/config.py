"""The ``retrieval:`` parameters shared by the stages that ground prompts in the documents."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class RetrievalConfig(BaseModel):
    """How passages are cut, searched and put into the chat; every value comes from the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    # Passages put into each prompt (0: none, past answers only).
    top_k: int = Field(ge=0)
    # Words of a passage's body (its heading path is not counted).
    max_words: int = Field(ge=1)
    # Share of the BM25 score in the fused score: 0 is dense only, 1 lexical only.
    lexical_weight: float = Field(ge=0.0, le=1.0)
    # The system text that introduces the passages; ``{passages}`` is replaced by them.
    template: str
    # Answers of past questions like the user's put into the prompt after the passages (0: none).
    past_answers: int = Field(ge=0)
    # The system text that introduces them; ``{answers}`` is replaced by them.
    past_answers_template: str
    # Training chats' past answers with their own question's among them (so nearly always
    # first), or without it, as a new question's would come.
    own_answer_in_training: bool

    @field_validator("template")
    @classmethod
    def _has_passages_field(cls, template: str) -> str:
        return _with_one_field(template, "passages", "template")

    @field_validator("past_answers_template")
    @classmethod
    def _has_answers_field(cls, template: str) -> str:
        return _with_one_field(template, "answers", "past_answers_template")

    @model_validator(mode="after")
    def _gives_something(self) -> RetrievalConfig:
        if self.enabled and self.top_k == 0 and self.past_answers == 0:
            raise ValueError(
                "retrieval is enabled with top_k 0 and past_answers 0: nothing would go into "
                "the prompt (set enabled: false to turn it off)"
            )
        return self


class EncoderTuningConfig(BaseModel):
    """``retrieval_encoder:`` in parameters_index.yml; every value comes from the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Steps of contrastive fine-tuning (0: the encoder as shipped).
    steps: int = Field(ge=0)
    # Passages (key groups) per step; two of each group's keys, every other key a negative.
    batch_size: int = Field(ge=2)
    learning_rate: float = Field(gt=0)
    temperature: float = Field(gt=0)
    # Tokens of a question at most.
    max_length: int = Field(ge=8)
    seed: int


class AnswerClassifierConfig(BaseModel):
    """``answer_classifier:`` in parameters_index.yml (``classifier.py``); every value comes from
    the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Its probability's share in the past answers' ranking, added to the votes' (0: votes alone,
    # no classifier fitted).
    weight: float = Field(ge=0.0)
    # Inverse strength of the L2 penalty on its weights (scikit-learn's ``C``).
    regularisation: float = Field(gt=0)
    # Folds of past questions for the out-of-fold probabilities of the training questions.
    folds: int = Field(ge=2)
    seed: int


# What an index built before past answers (formats 2 and 3) searches with: none given.
NO_PAST_ANSWERS = {"past_answers": 0, "past_answers_template": "{answers}"}
# What the retrieval config of an index built before 2026-12-07 is read with: training chats
# were grounded without their own answer then.
WITHOUT_OWN_ANSWER = {"own_answer_in_training": False}


def _with_one_field(template: str, field: str, name: str) -> str:
    if "{" + field + "}" not in template:
        raise ValueError(f"the retrieval {name} needs a '{{{field}}}' field")
    try:
        template.format(**{field: ""})
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"the retrieval {name} may only use the '{{{field}}}' field "
            f"(write other braces doubled): {error!r}"
        ) from error
    return template
