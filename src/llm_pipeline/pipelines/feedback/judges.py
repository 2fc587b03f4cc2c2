"""Judges that score sampled answers, so the best and the worst become a preference pair.

Two kinds, chosen by ``feedback.judge.model``:
- ``reward_model``: the align stage's reward model scores each chat-formatted prompt + answer,
  as RewardTrainer trained it to; a score is in the reward model's own units.
- a local model folder: a judge model compares every two answers to a prompt against written
  principles (constitutional AI feedback). Its choice is read from its next-token
  log-probabilities of "A" and "B", never parsed from free text, and each pair is asked in both
  orders so that a preference for a position cancels out. An answer's score is its mean
  probability of winning against the other answers of its prompt, between 0 and 1.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.pipelines.feedback.sampling import Prompt, chat_turns

logger = logging.getLogger(__name__)

REWARD_MODEL = "reward_model"
CHOICES = ("A", "B")

JUDGE_INSTRUCTIONS = (
    "You compare two answers to the same message. The better answer is the one that follows "
    "these principles more closely:\n{principles}\n"
    "Reply with one letter: A or B."
)
JUDGE_QUESTION = (
    "Message:\n{prompt}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n"
    "Which answer follows the principles better, A or B?"
)


class PairJudgeConfig(BaseModel):
    """Who scores the answers (``feedback.judge`` in parameters_feedback.yml)."""

    model_config = ConfigDict(extra="forbid")

    # "reward_model" (the catalog's), or the path of a local causal LM folder that judges by
    # the principles.
    model: str
    batch_size: int = Field(ge=1)

    @property
    def uses_principles(self) -> bool:
        return self.model != REWARD_MODEL


@dataclass(frozen=True)
class Judgement:
    """Each answer's score, per prompt, and the judge that gave them.

    ``comparisons`` holds, for a principles judge, one entry per pair of answers: the indices
    compared, the probability that the first is better (both orders averaged) and the choice.
    """

    scores: list[list[float]]
    judge: str
    comparisons: list[list[dict[str, Any]]]


def principles_hash(principles: list[str]) -> str:
    """A short, stable name for a list of principles: the judge of a pair records it."""
    return hashlib.sha256("\n".join(principles).encode("utf-8")).hexdigest()[:12]


# --- the reward model ------------------------------------------------------------------------


def judge_with_reward_model(
    reward_dir: Path | str,
    prompts: list[Prompt],
    answers: list[list[str]],
    batch_size: int,
) -> Judgement:
    """The reward model's score of every answer after its chat-formatted prompt."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm_pipeline.training.models import inference_placement
    from llm_pipeline.training.reward import score_conversations

    reward_dir = Path(reward_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(reward_dir), **inference_placement()
    ).eval()
    if model.config.num_labels != 1:
        raise ValueError(
            f"{reward_dir} is a classifier with {model.config.num_labels} labels; a reward model "
            "has one. Point feedback.judge.model at the align stage's reward_model."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(reward_dir))
    conversations = [
        [*chat_turns(prompt), {"role": "assistant", "content": answer}]
        for prompt, prompt_answers in zip(prompts, answers, strict=True)
        for answer in prompt_answers
    ]
    flat = score_conversations(model, tokenizer, conversations, batch_size)
    return Judgement(_regroup(flat, answers), model_name(reward_dir), [[] for _ in answers])


def model_name(folder: Path) -> str:
    """A model folder as a pair records it: relative to the project when inside it."""
    folder = Path(folder)
    if folder.is_absolute() and folder.is_relative_to(Path.cwd()):
        return folder.relative_to(Path.cwd()).as_posix()
    return folder.as_posix()


def _regroup(flat: list[float], answers: list[list[str]]) -> list[list[float]]:
    """Flat scores back into one list per prompt, shaped like ``answers``."""
    values = iter(flat)
    return [[next(values) for _ in prompt_answers] for prompt_answers in answers]


# --- a judge model and written principles --------------------------------------------------


def judge_with_principles(
    judge_dir: Path | str,
    principles: list[str],
    prompts: list[Prompt],
    answers: list[list[str]],
    batch_size: int,
) -> Judgement:
    """Scores from a judge model that compares every two answers of a prompt, in both orders,
    against ``principles`` (module docstring)."""
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import inference_placement, load_causal_lm

    judge_dir = Path(judge_dir)
    if not principles:
        raise ValueError(
            "feedback.principles is empty: a judge model needs written principles to apply. "
            "List them in conf/base/parameters_feedback.yml, or set feedback.judge.model to "
            "reward_model."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(judge_dir))
    model = load_causal_lm(judge_dir, **inference_placement()).eval()
    choice_ids = choice_token_ids(tokenizer, judge_dir)
    pairs = [
        (row, i, j)
        for row, prompt_answers in enumerate(answers)
        for i, j in itertools.combinations(range(len(prompt_answers)), 2)
    ]
    # Each pair in both orders: the first answer as A, then as B.
    texts = [
        judge_prompt(tokenizer, principles, prompts[row], answers[row][a], answers[row][b])
        for row, i, j in pairs
        for a, b in ((i, j), (j, i))
    ]
    margins = choice_margins(model, tokenizer, texts, choice_ids, batch_size)
    comparisons: list[list[dict[str, Any]]] = [[] for _ in answers]
    for k, (row, i, j) in enumerate(pairs):
        comparisons[row].append(compare(i, j, margins[2 * k], margins[2 * k + 1]))
    scores = [
        win_rates(len(prompt_answers), found)
        for prompt_answers, found in zip(answers, comparisons, strict=True)
    ]
    judge = f"{model_name(judge_dir)} principles:{principles_hash(principles)}"
    return Judgement(scores, judge, comparisons)


def choice_token_ids(tokenizer: Any, judge_dir: Path) -> tuple[int, int]:
    """The token ids that start the answers "A" and "B"; they must differ."""
    ids = []
    for letter in CHOICES:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if not encoded:
            raise ValueError(f"The tokenizer in {judge_dir} encodes '{letter}' as no token.")
        ids.append(encoded[0])
    if ids[0] == ids[1]:
        raise ValueError(
            f"The tokenizer in {judge_dir} starts 'A' and 'B' with the same token, so the judge's "
            "choice cannot be read from its next token: use another judge model."
        )
    return ids[0], ids[1]


def judge_prompt(
    tokenizer: Any, principles: list[str], prompt: Prompt, first: str, second: str
) -> str:
    """The chat-formatted question that asks the judge whether ``first`` (A) or ``second`` (B)
    follows the principles better, ending where its answer starts."""
    listed = "\n".join(f"{number}. {text}" for number, text in enumerate(principles, start=1))
    turns = chat_turns(prompt)
    message = "\n".join(f"{t['role']}: {t['content']}" for t in turns) if len(turns) > 1 else None
    question = JUDGE_QUESTION.format(
        prompt=message or turns[0]["content"], first=first, second=second
    )
    messages = [
        {"role": "system", "content": JUDGE_INSTRUCTIONS.format(principles=listed)},
        {"role": "user", "content": question},
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def choice_margins(
    model: Any, tokenizer: Any, texts: list[str], choice_ids: tuple[int, int], batch_size: int
) -> list[float]:
    """log p("A") - log p("B") of the judge's next token after each text."""
    import torch

    margins: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            add_special_tokens=False,
            return_tensors="pt",
            padding=True,
            padding_side="right",
        ).to(model.device)
        width = batch["input_ids"].shape[1]
        with torch.inference_mode():
            # A prompt-tuned judge puts its soft prompt's positions first: keep the text's.
            logits = model(**batch).logits[:, -width:].float()
        last = batch["attention_mask"].sum(dim=1) - 1
        rows = torch.arange(len(last), device=last.device)
        log_probs = torch.log_softmax(logits[rows, last], dim=-1)
        margins += (log_probs[:, choice_ids[0]] - log_probs[:, choice_ids[1]]).tolist()
    return margins


def compare(i: int, j: int, margin_i_first: float, margin_j_first: float) -> dict[str, Any]:
    """One pair's verdict from both orders.

    ``margin_i_first`` is log p(A) - log p(B) with answer i as A, ``margin_j_first`` the same with
    answer j as A. A judge that favours a position adds the same amount to both, so half their
    difference is its preference for i free of that bias; its logistic is P(i better than j),
    and half their sum is how much it favoured position A.
    """
    preference = (margin_i_first - margin_j_first) / 2
    choice = i if preference > 0 else j if preference < 0 else None
    return {
        "answers": [i, j],
        "p_first_better": 1 / (1 + math.exp(-preference)),
        "choice": choice,
        # Both orders name the same answer: the verdict does not hinge on the position.
        "consistent": margin_i_first * margin_j_first < 0,
        "position_bias": (margin_i_first + margin_j_first) / 2,
    }


def win_rates(count: int, comparisons: list[dict[str, Any]]) -> list[float]:
    """Each answer's mean probability of beating the other answers of its prompt."""
    wins = [0.0] * count
    for found in comparisons:
        i, j = found["answers"]
        wins[i] += found["p_first_better"]
        wins[j] += 1 - found["p_first_better"]
    return [w / (count - 1) if count > 1 else 0.5 for w in wins]
