"""The past answers' classifier: logistic regression fitted with L-BFGS, and the out-of-fold
probabilities that rank the training questions as if new."""

from __future__ import annotations

import numpy as np
import pytest

from llm_pipeline.retrieval.classifier import fit_answer_classifier


def clusters(per_answer: int, answers: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one centre per answer, ``per_answer`` of each."""
    rng = np.random.default_rng(seed)
    centres = np.eye(answers, 8)
    points = np.repeat(centres, per_answer, axis=0) + rng.normal(0, 0.2, (answers * per_answer, 8))
    labels = np.repeat(np.arange(answers), per_answer)
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels


def fit(points, labels, questions=None, folds=3, regularisation=100.0, seed=0):
    questions = questions or [f"question {i}" for i in range(len(labels))]
    return fit_answer_classifier(
        points, labels, questions, int(labels.max()) + 1, regularisation, folds, seed
    )


def test_it_gives_each_cluster_its_answer_and_probabilities_that_sum_to_one():
    points, labels = clusters(6)
    classifier = fit(points, labels)
    new, new_labels = clusters(4, seed=1)

    probabilities = classifier.probabilities(new)

    assert probabilities.shape == (12, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == new_labels).all()
    assert (probabilities.max(axis=1) > 0.9).all()  # well apart, and the penalty is weak


def test_a_stronger_penalty_makes_it_less_sure():
    points, labels = clusters(6)
    sure = fit(points, labels, regularisation=100.0).probabilities(points).max(axis=1)
    unsure = fit(points, labels, regularisation=0.01).probabilities(points).max(axis=1)

    assert (unsure < sure).all()


def test_out_of_fold_probabilities_come_from_fits_that_did_not_see_the_question():
    points, labels = clusters(6)
    # One more question, the only one that got answer 3: no fit without it knows that answer.
    points = np.vstack([points, np.eye(1, 8, 5)])
    labels = np.append(labels, 3)
    classifier = fit(points, labels)

    assert classifier.probabilities(points[-1:])[0, 3] > 0.9  # the final fit saw it
    assert classifier.out_of_fold[-1, 3] == 0.0
    assert np.allclose(classifier.out_of_fold.sum(axis=1), 1.0)
    # The others are still told apart by fits that had their clusters' other questions.
    assert (classifier.out_of_fold[:-1].argmax(axis=1) == labels[:-1]).all()


def test_the_same_question_asked_twice_is_in_one_fold_and_the_draw_is_the_seed_s():
    points, labels = clusters(6)
    # One text asked twice, the only two pairs of answer 3: in different folds, each would be
    # ranked by a fit that saw the other and knew answer 3; in one fold, neither does.
    points = np.vstack([points, np.eye(2, 8, 5)])
    labels = np.append(labels, [3, 3])
    questions = [f"q{i}" for i in range(18)] + ["the same question"] * 2
    for seed in range(5):
        assert (fit(points, labels, questions, folds=4, seed=seed).out_of_fold[-2:, 3] == 0).all()

    first = fit(points, labels, questions, folds=4, seed=7)
    again = fit(points, labels, questions, folds=4, seed=7)
    other = fit(points, labels, questions, folds=4, seed=8)
    assert np.array_equal(first.out_of_fold, again.out_of_fold)
    assert np.array_equal(first.weights, again.weights)
    assert not np.array_equal(first.out_of_fold, other.out_of_fold)


def test_it_refuses_fewer_than_two_folds_and_lists_of_different_lengths():
    points, labels = clusters(2)
    with pytest.raises(ValueError, match="folds must be at least 2"):
        fit(points, labels, folds=1)
    with pytest.raises(ValueError, match="6 embeddings, 5 answers and 6 questions"):
        fit_answer_classifier(points, labels[:5], ["q"] * 6, 3, 1.0, 2, 0)
