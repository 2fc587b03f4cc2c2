"""Near-duplicates (MinHash + LSH) and validation leakage (long shared n-grams)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from pydantic import ValidationError
from support import parameters_of

from llm_pipeline.hygiene import near_duplicates
from llm_pipeline.hygiene.near_duplicates import (
    LeakageConfig,
    NearDuplicate,
    NearDuplicateConfig,
    find_near_duplicates,
    leaked_ngrams_index,
    leaked_ngrams_indexes,
    lsh_bands,
    minhash_signatures,
    shingles,
    words,
)


def near_duplicate_config(**overrides: object) -> NearDuplicateConfig:
    """conf/base's ``ingest.near_duplicates`` with ``overrides``."""
    return NearDuplicateConfig.model_validate(
        parameters_of("ingest.near_duplicates", env="base", **overrides)
    )


NEAR = near_duplicate_config()
LEAKAGE = LeakageConfig(ngram=parameters_of("ingest.leakage", env="base")["ngram"])
VOCABULARY = [f"w{i}" for i in range(50_000)]


def random_words(rng: random.Random, n: int) -> list[str]:
    return rng.sample(VOCABULARY, n)


def with_changes(tokens: list[str], positions: list[int], rng: random.Random) -> list[str]:
    changed = list(tokens)
    for position in positions:
        changed[position] = rng.choice(VOCABULARY)
    return changed


def jaccard(a: str, b: str, k: int = 5) -> float:
    x, y = shingles(a, k), shingles(b, k)
    return len(x & y) / len(x | y)


def by_index(duplicates: list[NearDuplicate]) -> dict[int, NearDuplicate]:
    return {duplicate.index: duplicate for duplicate in duplicates}


# --- words and signatures ------------------------------------------------------------------


def test_words_are_lowercased_word_runs_as_re_finds_them() -> None:
    text = "Hello, WORLD! naïve_café Привет мир 東京 3.14 e-mail"
    assert words(text) == re.findall(r"\w+", text.lower())


def test_signatures_have_one_uint32_row_of_num_perm_entries_per_text() -> None:
    texts = ["one two three four five six", "", "!!! ...", "short text", "x"]
    signatures = minhash_signatures(texts, near_duplicate_config(num_perm=100))
    assert signatures.shape == (5, 100)
    assert signatures.dtype == np.uint32
    assert (signatures[1] == 0xFFFFFFFF).all() and (signatures[2] == 0xFFFFFFFF).all()
    assert not (signatures[3] == 0xFFFFFFFF).all()


def test_case_and_punctuation_do_not_change_a_signature() -> None:
    plain = "the cat sat on the mat and then Привет мир again"
    noisy = "The CAT sat -- on the mat; and then ПРИВЕТ, мир... again!"
    signatures = minhash_signatures([plain, noisy, plain.replace("mat", "hat")], NEAR)
    assert (signatures[0] == signatures[1]).all()
    assert not (signatures[0] == signatures[2]).all()


def test_a_signature_does_not_depend_on_the_other_texts_in_the_call() -> None:
    rng = random.Random(3)
    # Over a million characters, so the texts are hashed in several chunks and batches.
    texts = [" ".join(random_words(rng, 300)) for _ in range(600)]
    together = minhash_signatures(texts, NEAR)
    for index in (0, 1, 299, 599):
        assert (minhash_signatures([texts[index]], NEAR)[0] == together[index]).all()


def test_seed_changes_signatures() -> None:
    text = ["a few words that make several shingles for the signature"]
    assert not (
        minhash_signatures(text, near_duplicate_config(seed=1))
        == minhash_signatures(text, near_duplicate_config(seed=2))
    ).all()


@pytest.mark.parametrize(("common", "different"), [(8, 4), (150, 60)])
def test_equal_signature_entries_estimate_jaccard_without_bias(common: int, different: int) -> None:
    """Short texts leave most bins empty, so this also checks the densification."""
    rng = random.Random(common)
    estimates, truths = [], []
    for seed in range(30):
        tokens = random_words(rng, common + 2 * different)
        a = " ".join(tokens[: common + different])
        b = " ".join(tokens[:common] + tokens[common + different :])
        signatures = minhash_signatures([a, b], near_duplicate_config(seed=seed))
        estimates.append((signatures[0] == signatures[1]).mean())
        truths.append(jaccard(a, b))
    assert abs(np.mean(estimates) - np.mean(truths)) < 0.05


# --- LSH parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("num_perm", [64, 100, 128, 256])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 0.9, 0.95])
def test_lsh_bands_use_every_permutation_and_the_most_rows_that_keep_recall(
    num_perm: int, threshold: float
) -> None:
    bands, rows = lsh_bands(near_duplicate_config(num_perm=num_perm, threshold=threshold))

    def candidate_probability(b: int, r: int) -> float:
        return 1 - (1 - threshold**r) ** b

    assert bands * rows == num_perm
    assert candidate_probability(bands, rows) >= 0.9
    for more_rows in range(rows + 1, num_perm + 1):
        if num_perm % more_rows == 0:
            assert candidate_probability(num_perm // more_rows, more_rows) < 0.9


# --- near-duplicates -----------------------------------------------------------------------


def test_identical_texts_point_to_the_first_copy_with_similarity_one() -> None:
    a = "The same words in the same order, over and over, make the same shingles."
    b = "Something else entirely: unrelated words that share no five word run at all."
    found = find_near_duplicates([a, b, a.upper(), a + "!!", b], NEAR)
    assert found == [
        NearDuplicate(2, 0, 1.0),
        NearDuplicate(3, 0, 1.0),
        NearDuplicate(4, 1, 1.0),
    ]


def test_a_few_changed_words_are_found_and_unrelated_texts_are_not() -> None:
    rng = random.Random(7)
    original = random_words(rng, 200)
    one_change = with_changes(original, [100], rng)
    two_changes = with_changes(original, [20, 150], rng)
    texts = [" ".join(t) for t in (original, random_words(rng, 200), one_change, two_changes)]
    found = by_index(find_near_duplicates(texts, near_duplicate_config(threshold=0.8)))
    assert sorted(found) == [2, 3]
    assert found[2].kept_index == 0 and found[3].kept_index == 0
    assert abs(found[2].similarity - jaccard(texts[0], texts[2])) < 0.1
    assert abs(found[3].similarity - jaccard(texts[0], texts[3])) < 0.1


def test_half_overlapping_texts_are_found_at_a_low_threshold_only() -> None:
    rng = random.Random(11)
    shared, own_a, own_b = random_words(rng, 134), random_words(rng, 66), random_words(rng, 66)
    a, b = " ".join(shared + own_a), " ".join(shared + own_b)
    true_similarity = jaccard(a, b)
    assert 0.45 < true_similarity < 0.55

    assert find_near_duplicates([a, b], near_duplicate_config(threshold=0.8)) == []
    [found] = find_near_duplicates([a, b], near_duplicate_config(threshold=0.3))
    assert (found.index, found.kept_index) == (1, 0)
    assert abs(found.similarity - true_similarity) < 0.15


def test_a_chain_of_edits_always_points_to_a_kept_text() -> None:
    rng = random.Random(5)
    a = random_words(rng, 200)
    b = with_changes(a, [10, 60, 110, 160], rng)  # about 0.81 like a
    c = with_changes(b, [35, 85, 135, 185], rng)  # about 0.81 like b, 0.66 like a
    texts = [" ".join(t) for t in (a, b, c)]
    found = by_index(find_near_duplicates(texts, near_duplicate_config(threshold=0.7)))
    assert found[1].kept_index == 0
    assert 2 not in found or found[2].kept_index == 0


def test_every_duplicate_in_a_cluster_points_to_an_earlier_kept_text_above_threshold() -> None:
    rng = random.Random(9)
    base = random_words(rng, 150)
    texts = [
        " ".join(with_changes(base, rng.sample(range(150), rng.randint(0, 12)), rng))
        for _ in range(300)
    ]
    config = near_duplicate_config(threshold=0.75)
    found = find_near_duplicates(texts, config)
    duplicates = {d.index for d in found}
    assert found == sorted(found, key=lambda d: d.index)
    assert len(duplicates) > 100
    for duplicate in found:
        assert duplicate.kept_index < duplicate.index
        assert duplicate.kept_index not in duplicates
        assert duplicate.similarity >= config.threshold


def test_same_input_same_output_and_input_order_decides_the_kept_copy() -> None:
    rng = random.Random(13)
    original = random_words(rng, 120)
    texts = [
        " ".join(random_words(rng, 120)),
        " ".join(original),
        " ".join(with_changes(original, [60], rng)),
    ]
    first = find_near_duplicates(texts, NEAR)
    assert first == find_near_duplicates(list(texts), NEAR)
    assert [(d.index, d.kept_index) for d in first] == [(2, 1)]

    reordered = find_near_duplicates([texts[2], texts[0], texts[1]], NEAR)
    assert [(d.index, d.kept_index) for d in reordered] == [(2, 0)]


def test_which_texts_are_duplicates_depends_on_the_seed_only_through_signatures() -> None:
    rng = random.Random(17)
    originals = [random_words(rng, 150) for _ in range(20)]
    texts = [" ".join(t) for t in originals]
    texts += [" ".join(with_changes(t, [75], rng)) for t in originals]
    pairs = {
        seed: [
            (d.index, d.kept_index)
            for d in find_near_duplicates(texts, near_duplicate_config(seed=seed))
        ]
        for seed in (1, 2, 3)
    }
    expected = [(20 + i, i) for i in range(20)]
    assert pairs[1] == pairs[2] == pairs[3] == expected


def test_empty_and_short_texts_are_handled() -> None:
    texts = ["", "hi there", "   ", "Hi, THERE!", "hi there friend", "", "!!"]
    found = find_near_duplicates(texts, NEAR)
    # Texts without words have no shingles and are never reported; short texts are one shingle.
    assert found == [NearDuplicate(3, 1, 1.0)]


def test_non_text_input_is_refused_with_its_index() -> None:
    with pytest.raises(TypeError, match="text 1 is a NoneType"):
        find_near_duplicates(["fine", None], NEAR)  # type: ignore[list-item]


def test_unknown_config_keys_fail() -> None:
    with pytest.raises(ValidationError):
        near_duplicate_config(treshold=0.8)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LeakageConfig(n_gram=13)  # type: ignore[call-arg]


def test_thousands_of_short_texts_with_planted_duplicates_are_all_found_quickly() -> None:
    rng = random.Random(21)
    texts = [" ".join(random_words(rng, 30)) for _ in range(4000)]
    planted: dict[int, int] = {}
    for source in rng.sample(range(4000), 200):
        copy = texts[source].upper() + "." if rng.random() < 0.5 else texts[source] + " tail"
        planted[len(texts)] = source
        texts.append(copy)
    found = find_near_duplicates(texts, NEAR)
    assert {d.index: d.kept_index for d in found} == planted


def test_many_identical_texts_do_not_go_quadratic() -> None:
    text = " ".join(random_words(random.Random(23), 300))
    found = find_near_duplicates([text] * 10_000, NEAR)
    assert len(found) == 9_999
    assert all(d.kept_index == 0 and d.similarity == 1.0 for d in found)


# --- leakage -------------------------------------------------------------------------------


def test_a_thirteen_word_run_inside_a_training_text_leaks() -> None:
    rng = random.Random(31)
    validation = random_words(rng, 40)
    run = " ".join(validation[10:23]).upper()
    train = [
        " ".join(random_words(rng, 50)),
        " ".join(random_words(rng, 30)) + f", {run}; " + " ".join(random_words(rng, 30)),
        " ".join(random_words(rng, 50)),
    ]
    assert leaked_ngrams_index(
        train, [" ".join(random_words(rng, 40)), " ".join(validation)], LEAKAGE
    ) == {1: [1]}


def test_twelve_shared_words_do_not_leak() -> None:
    rng = random.Random(37)
    validation = random_words(rng, 40)
    train = [
        " ".join([*validation[:12], "different", *validation[13:25]]),
        " ".join(random_words(rng, 10) + validation[20:32]),
    ]
    assert leaked_ngrams_index(train, [" ".join(validation)], LEAKAGE) == {}
    assert leaked_ngrams_index(train, [" ".join(validation)], LeakageConfig(ngram=12)) == {
        0: [0, 1]
    }


def test_a_run_split_across_two_training_texts_does_not_leak() -> None:
    rng = random.Random(41)
    validation = random_words(rng, 20)
    train = [" ".join(validation[:10]), " ".join(validation[10:])]
    assert leaked_ngrams_index(train, [" ".join(validation)], LEAKAGE) == {}


def test_short_validation_texts_leak_only_when_contained_contiguously() -> None:
    train = [
        "The answer is Paris, the capital of France, as everyone knows.",
        "Paris is big; the capital of Spain is Madrid.",
        "capital of",
    ]
    validation = ["the capital of France", "Capital of Spain", "Paris France", "", "capital of"]
    assert leaked_ngrams_index(train, validation, LEAKAGE) == {0: [0], 1: [1], 4: [0, 1, 2]}


def test_leaks_are_found_at_the_right_indices_among_many_training_texts() -> None:
    rng = random.Random(43)
    validation = [" ".join(random_words(rng, 30)) for _ in range(50)]
    train = [" ".join(random_words(rng, 60)) for _ in range(3000)]  # several chunks
    planted = {0: [5], 7: [1234, 2999], 49: [0, 1234]}
    for index, targets in planted.items():
        run = " ".join(validation[index].split()[3:16])
        for target in targets:
            train[target] = f"{train[target]} {run} {train[target]}"
    assert leaked_ngrams_index(train, validation, LEAKAGE) == planted


def test_no_validation_or_no_training_text_means_no_leak() -> None:
    assert leaked_ngrams_index([], ["some validation words"], LEAKAGE) == {}
    assert leaked_ngrams_index(["some training words"], [], LEAKAGE) == {}
    assert leaked_ngrams_index(["", "x"], ["", "   "], LEAKAGE) == {}


# --- worker processes ----------------------------------------------------------------------


def test_two_workers_find_the_same_duplicates_and_leaks_as_one(monkeypatch) -> None:
    # Small batches, so that a few hundred texts make many tasks spread over the workers.
    monkeypatch.setattr(near_duplicates, "_BATCH_CHARS", 20_000)
    rng = random.Random(47)
    texts = [" ".join(random_words(rng, 60)) for _ in range(600)]
    for index in range(0, 600, 7):
        texts.append(" ".join(with_changes(texts[index].split(), [3], rng)))
    validation = [" ".join(random_words(rng, 30)) for _ in range(20)]
    for index in (5, 333, 640):
        texts[index] += " " + " ".join(validation[index % 20].split()[2:16])

    found = find_near_duplicates(texts, NEAR, workers=1)
    assert len(found) >= 80
    assert find_near_duplicates(texts, NEAR, workers=2) == found
    leaks = leaked_ngrams_index(texts, validation, LEAKAGE, workers=1)
    assert leaks == {5: [5], 13: [333], 0: [640]}
    assert leaked_ngrams_index(texts, validation, LEAKAGE, workers=2) == leaks


def test_signature_tables_of_parts_give_the_duplicates_of_the_whole() -> None:
    rng = random.Random(53)
    texts = [" ".join(random_words(rng, 80)) for _ in range(200)]
    for index in range(0, 200, 9):
        texts.append(" ".join(with_changes(texts[index].split(), [7], rng)))
    texts += ["", "  ", texts[4]]  # no words, no words, an identical copy
    config = near_duplicate_config()

    parts = [near_duplicates.signature_table(texts[a:b], config) for a, b in ((0, 97), (97, 230))]
    signatures = np.concatenate([part[0] for part in parts])
    has_shingles = np.concatenate([part[1] for part in parts])

    assert np.array_equal(signatures, minhash_signatures(texts, config))
    assert has_shingles.tolist() == [bool(words(text)) for text in texts]
    found = near_duplicates.near_duplicates_among(signatures, has_shingles, config)
    assert found == find_near_duplicates(texts, config)
    assert len(found) >= 24
    assert by_index(found)[len(texts) - 1] == NearDuplicate(len(texts) - 1, 4, 1.0)
    empty = near_duplicates.signature_table([], config)
    assert empty[0].shape == (0, config.num_perm) and empty[1].shape == (0,)


def test_several_corpora_checked_at_once_find_what_each_finds_alone(monkeypatch) -> None:
    monkeypatch.setattr(near_duplicates, "_BATCH_CHARS", 5_000)
    rng = random.Random(48)
    validation = [" ".join(random_words(rng, 30)) for _ in range(10)]
    corpora = {
        name: [" ".join(random_words(rng, 50)) for _ in range(size)]
        for name, size in (("documents", 300), ("conversations", 120), ("preferences", 0))
    }
    corpora["documents"][17] += " " + " ".join(validation[3].split()[:14])
    corpora["conversations"][101] = " ".join(validation[8].split()[5:20])
    alone = {
        name: leaked_ngrams_index(texts, validation, LEAKAGE) for name, texts in corpora.items()
    }
    assert alone == {"documents": {3: [17]}, "conversations": {8: [101]}, "preferences": {}}
    for workers in (1, 2):
        assert leaked_ngrams_indexes(corpora, validation, LEAKAGE, workers=workers) == alone
