"""The ``retrieval:`` parameters shared by the stages that ground prompts in the documents."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RetrievalConfig(BaseModel):
    """How passages are cut, searched and put into the chat; every value comes from the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    # Passages put into each prompt.
    top_k: int = Field(ge=1)
    # Words of a passage's body (its heading path is not counted).
    max_words: int = Field(ge=1)
    # Share of the BM25 score in the fused score: 0 is dense only, 1 lexical only.
    lexical_weight: float = Field(ge=0.0, le=1.0)
    # The system text that introduces the passages; ``{passages}`` is replaced by them.
    template: str

    @field_validator("template")
    @classmethod
    def _has_passages_field(cls, template: str) -> str:
        if "{passages}" not in template:
            raise ValueError("the retrieval template needs a '{passages}' field")
        try:
            template.format(passages="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"the retrieval template may only use the '{{passages}}' field "
                f"(write other braces doubled): {error!r}"
            ) from error
        return template
