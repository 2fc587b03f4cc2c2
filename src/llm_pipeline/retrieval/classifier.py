"""Which past answer a question needs, as a classifier: multinomial logistic regression from a
question's embedding to the answers the past questions got (one class per distinct answer).

The key votes of ``index.py`` ask the closest past questions; the classifier weighs every
past question of every answer at once, and learns which directions of the embedding space
tell two answers apart ("voucher" and "gift card" on one side, "promo code" on the other),
which a nearest-neighbour vote cannot. Its probability, as a share of the most probable
answer's, is added to the votes' share with ``weight`` (``PassageIndex.past_answers``).

Training conversations are grounded as new questions would be (``leave_own_out``): a
classifier fitted on a question would give it its own answer first nearly every time, and
the model fine-tuned on such prompts would learn to trust the first past answer more than a
new question's ranking deserves. So each past question also keeps its *out-of-fold*
probabilities, those of a classifier fitted on the other folds of past questions
(``folds``; the same question text is always in one fold).

Fitted with L-BFGS in float64 on the objective of scikit-learn's ``LogisticRegression``
(summed cross-entropy plus ``||W||^2 / (2 * regularisation)``, the bias not penalised), so
``regularisation`` is its ``C``. On the sample data's 505 past pairs of 112 answers, fitting
the final classifier and the 5 out-of-fold ones takes about a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

# L-BFGS iterations at most per fit (the sample data's fits converge in about 100-300).
MAX_ITERATIONS = 500


@dataclass(frozen=True)
class AnswerClassifier:
    """A fitted classifier: ``weights`` (answers x dimensions), ``bias`` (answers), and the
    out-of-fold probabilities of the past pairs it was fitted on (pairs x answers)."""

    weights: np.ndarray
    bias: np.ndarray
    out_of_fold: np.ndarray

    def probabilities(self, embedded: np.ndarray) -> np.ndarray:
        """Each row of ``embedded`` (queries x dimensions): its probability of every answer."""
        return softmax(embedded.astype(np.float64) @ self.weights.T + self.bias, axis=1)


def fit_answer_classifier(
    embedded: np.ndarray,
    answers: np.ndarray,
    questions: list[str],
    classes: int,
    regularisation: float,
    folds: int,
    seed: int,
) -> AnswerClassifier:
    """The classifier of ``embedded`` past questions (pairs x dimensions) to their ``answers``
    (each pair's answer number, below ``classes``), with out-of-fold probabilities over
    ``folds`` folds of the distinct ``questions`` (one text per pair), drawn by ``seed``."""
    if len(embedded) != len(answers) or len(answers) != len(questions):
        raise ValueError(
            f"{len(embedded)} embeddings, {len(answers)} answers and {len(questions)} questions."
        )
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    weights, bias = _fit(embedded, answers, classes, regularisation)
    distinct = list(dict.fromkeys(questions))
    random.Random(seed).shuffle(distinct)
    fold_of = {question: position % folds for position, question in enumerate(distinct)}
    fold = np.array([fold_of[question] for question in questions])
    out_of_fold = np.zeros((len(answers), classes))
    for number in range(folds):
        held_out = fold == number
        if not held_out.any() or held_out.all():
            continue
        fold_weights, fold_bias = _fit(
            embedded[~held_out], answers[~held_out], classes, regularisation
        )
        out_of_fold[held_out] = softmax(embedded[held_out] @ fold_weights.T + fold_bias, axis=1)
    return AnswerClassifier(weights, bias, out_of_fold)


def _fit(
    embedded: np.ndarray, answers: np.ndarray, classes: int, regularisation: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias minimising the summed cross-entropy plus the weights' L2 penalty.
    An answer no pair of these has gets bias -inf: probability 0, as if it were not a class."""
    import torch

    inputs = torch.from_numpy(np.asarray(embedded, dtype=np.float64))
    targets = torch.from_numpy(np.asarray(answers, dtype=np.int64))
    present = torch.zeros(classes, dtype=torch.bool)
    present[targets] = True
    weights = torch.zeros((classes, inputs.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    absent = torch.where(present, 0.0, float("-inf")).to(torch.float64)
    optimiser = torch.optim.LBFGS(
        [weights, bias],
        max_iter=MAX_ITERATIONS,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        logits = inputs @ weights.T + bias + absent
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        loss = loss + (weights**2).sum() / (2 * regularisation)
        loss.backward()
        return loss

    optimiser.step(objective)
    return weights.detach().numpy(), (bias + absent).detach().numpy()
