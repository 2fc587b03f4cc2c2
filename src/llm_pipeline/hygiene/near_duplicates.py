"""Near-duplicates (MinHash with LSH) and validation leakage (long shared n-grams).

A text is its ``\\w+`` words as Python's ``re`` defines them, lowercased character by character.
Words are found and hashed with numpy over the code points of a batch of texts, and an n-gram's
hash comes from prefix sums in O(1) whatever its length: no Python loop runs per word.

Signatures use one-permutation hashing with optimal densification (Li, Owen and Zhang 2012;
Shrivastava 2017): each shingle is hashed once into one of ``num_perm`` bins, and an empty bin
borrows from the first filled bin in its own fixed random order. The fraction of equal entries
estimates Jaccard similarity as k-permutation MinHash does, at O(shingles + num_perm) per text
instead of O(shingles * num_perm), which is what lets ingest keep pace with reading.
Hashes are 64-bit polynomials: fine for real data, not built to resist crafted collisions.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.hygiene import parallel

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")
_HASH_CHARS = 1 << 17  # small enough that the temporary arrays stay in cache: most of the speed
_BATCH_CHARS = 1 << 20
_EMPTY = np.uint32(0xFFFFFFFF)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_LEAKAGE_SEED = 0
_MIN_CANDIDATE_PROBABILITY = 0.9
# Bounds verification when many texts share buckets yet stay below the threshold (templates).
_MAX_KEPT_PER_BUCKET = 32


class NearDuplicateConfig(BaseModel):
    """How similar, by estimated Jaccard of word shingles, two texts are to be near-duplicates."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(gt=0.0, le=1.0)
    num_perm: int = Field(ge=2, le=4096)
    shingle_words: int = Field(ge=1)
    seed: int = Field(ge=0)


class LeakageConfig(BaseModel):
    """How many consecutive shared words count as a validation example leaking into training."""

    model_config = ConfigDict(extra="forbid")

    ngram: int = Field(ge=1)


@dataclass(frozen=True)
class NearDuplicate:
    """Text ``index`` is a near-duplicate of the earlier, kept text ``kept_index``."""

    index: int
    kept_index: int
    similarity: float


def words(text: str) -> list[str]:
    """The lowercased ``\\w+`` words of ``text``: the unit both checks compare."""
    lowered = np.take(_lowercase_word_characters(), _code_points(text))
    spaced = np.where(lowered == 0, ord(" "), lowered).astype(np.uint32)
    return spaced.tobytes().decode("utf-32-le", "surrogatepass").split()


def shingles(text: str, k: int) -> set[str]:
    """Space-joined ``k``-word shingles; a text shorter than ``k`` words is one shingle."""
    tokens = words(text)
    if len(tokens) < k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


# --- hashing words and n-grams -------------------------------------------------------------


@dataclass(frozen=True)
class _HashKeys:
    char_base: int
    word_base: int
    word_key: np.uint64


@dataclass(frozen=True)
class _Words:
    """Hashed words of a batch of texts, with prefix sums for O(1) n-gram hashes."""

    prefix: np.ndarray  # prefix[i] = sum over j < i of hash[j] * word_base**j (mod 2**64)
    text_of_word: np.ndarray
    first_word: np.ndarray
    counts: np.ndarray


@functools.lru_cache(maxsize=16)
def _hash_keys(seed: int) -> _HashKeys:
    rng = np.random.default_rng(seed)
    char_base, word_base, word_key = (int(v) for v in rng.integers(0, 2**64, 3, dtype=np.uint64))
    return _HashKeys(char_base | 1, word_base | 1, np.uint64(word_key))


@functools.cache
def _lowercase_word_characters() -> np.ndarray:
    """For every code point: its lowercase if that matches ``re``'s ``\\w``, else 0.

    Lowercasing is character by character; the one character whose ``str.lower`` is longer
    (U+0130, dotted capital I) becomes its first character, "i".
    """
    code_points = np.arange(sys.maxunicode + 1, dtype=np.uint32).tobytes()
    every = code_points.decode("utf-32-le", "surrogatepass")
    blocks = []
    for start in range(0, len(every), 4096):
        block = every[start : start + 4096]
        lowered = block.lower()
        if len(lowered) != len(block):
            lowered = "".join(character.lower()[0] for character in block)
        blocks.append(lowered)
    lowered = "".join(blocks)
    table = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
    is_word = np.zeros(len(table), dtype=bool)
    for run in _WORD.finditer(lowered):
        is_word[run.start() : run.end()] = True
    table[~is_word] = 0
    return table


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@functools.lru_cache(maxsize=8)
def _powers_with_capacity(base: int, capacity: int) -> np.ndarray:
    powers = np.full(capacity, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, out=powers)  # wraps mod 2**64, which is the arithmetic wanted


def _powers(base: int, n: int) -> np.ndarray:
    """``base**i mod 2**64`` for ``i < n`` (at least), cached at power-of-two sizes."""
    return _powers_with_capacity(base, max(1 << 16, 1 << (n - 1).bit_length()))


def _inverse_powers(base: int, n: int) -> np.ndarray:
    return _powers(pow(base, -1, 2**64), n)


def _mix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser, in place: every output bit depends on every input bit."""
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xFF51AFD7ED558CCD)
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xC4CEB9FE1A85EC53)
    values ^= values >> np.uint64(33)
    return values


def _span_hashes(
    prefix: np.ndarray, inverse_powers: np.ndarray, starts: np.ndarray, lengths: np.ndarray | int
) -> np.ndarray:
    """Polynomial hashes of ``[start, start + length)`` that do not depend on where spans sit."""
    return (prefix[starts + lengths] - prefix[starts]) * inverse_powers[starts]


def _prefix_sums(values: np.ndarray, powers: np.ndarray) -> np.ndarray:
    prefix = np.zeros(len(values) + 1, dtype=np.uint64)
    np.multiply(values, powers[: len(values)], out=prefix[1:], dtype=np.uint64)
    np.cumsum(prefix, out=prefix)
    return prefix


def _hash_words(texts: Sequence[str], keys: _HashKeys) -> _Words:
    """Every word of ``texts`` hashed from its code points, with no Python loop over words."""
    code_points = _code_points("\n".join(texts))  # "\n" is no word character: no word spans texts
    lowered = np.take(_lowercase_word_characters(), code_points)
    is_word = np.zeros(len(code_points) + 2, dtype=bool)
    np.not_equal(lowered, 0, out=is_word[1:-1])
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts, ends = edges[0::2], edges[1::2]

    # Non-word characters are 0, so they add nothing to the prefix sums.
    n_chars = len(code_points)
    prefix = _prefix_sums(lowered, _powers(keys.char_base, n_chars))
    word_hashes = _span_hashes(
        prefix, _inverse_powers(keys.char_base, n_chars), starts, ends - starts
    )
    _mix64(np.bitwise_xor(word_hashes, keys.word_key, out=word_hashes))

    text_bounds = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1, out=text_bounds[1:])
    word_bounds = np.searchsorted(starts, text_bounds)
    counts = np.diff(word_bounds)
    return _Words(
        prefix=_prefix_sums(word_hashes, _powers(keys.word_base, len(word_hashes))),
        text_of_word=np.repeat(np.arange(len(texts)), counts),
        first_word=word_bounds[:-1],
        counts=counts,
    )


def _ngram_hashes_everywhere(batch: _Words, keys: _HashKeys, n: int) -> np.ndarray:
    """Hash of the ``n`` words from every word position, runs across two texts included."""
    count = max(len(batch.text_of_word) - n + 1, 0)
    inverse = _inverse_powers(keys.word_base, count)
    return (batch.prefix[n:] - batch.prefix[:count]) * inverse[:count]


def _runs_within_one_text(batch: _Words, starts: np.ndarray, n: int) -> np.ndarray:
    return batch.text_of_word[starts] == batch.text_of_word[starts + n - 1]


def _whole_text_hashes(batch: _Words, keys: _HashKeys, texts: np.ndarray) -> np.ndarray:
    """Hash of all the words of each of ``texts`` (batch indices), as one run."""
    inverse = _inverse_powers(keys.word_base, len(batch.text_of_word) + 1)
    return _span_hashes(batch.prefix, inverse, batch.first_word[texts], batch.counts[texts])


def _chunks(texts: Sequence[str], max_chars: int) -> Iterator[tuple[int, Sequence[str]]]:
    """(offset, slice) of consecutive texts totalling about ``max_chars`` characters."""
    start, size = 0, 0
    for end, text in enumerate(texts):
        if size and size + len(text) > max_chars:
            yield start, texts[start:end]
            start, size = end, 0
        size += len(text) + 1
    if start < len(texts):
        yield start, texts[start:]


def _as_texts(texts: Sequence[str], what: str) -> list[str]:
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what} {index} is a {type(text).__name__}, not a str")
    return texts


# --- MinHash signatures ----------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _borrowing_orders(seed: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ``j``: the fixed random order in which empty bin ``j`` looks for a filled bin, and
    the rank of every bin in that order."""
    orders = np.tile(np.arange(num_perm), (num_perm, 1))
    orders = np.random.default_rng([seed, num_perm]).permuted(orders, axis=1)
    return orders, np.argsort(orders, axis=1)


def _densify(signatures: np.ndarray, filled: np.ndarray, seed: int) -> None:
    """Give each empty bin of a text with shingles the value of the first filled bin in its
    order; as the orders are shared by all texts, equal entries still estimate Jaccard."""
    orders, ranks = _borrowing_orders(seed, signatures.shape[1])
    filled_bins = filled.sum(axis=1)
    # Probing costs about (empty / filled) steps per empty bin, so sparse texts go another way.
    sparse = (filled_bins > 0) & (filled_bins**2 <= signatures.shape[1])
    _densify_by_probing(signatures, filled, ~sparse & (filled_bins > 0), orders)
    _densify_sparse(signatures, filled, np.flatnonzero(sparse), orders, ranks)


def _densify_by_probing(
    signatures: np.ndarray, filled: np.ndarray, texts: np.ndarray, orders: np.ndarray
) -> None:
    rows, bins = np.nonzero(~filled & texts[:, None])
    for attempt in range(orders.shape[1]):
        if len(rows) == 0:
            break
        donors = orders[bins, attempt]
        found = filled[rows, donors]
        signatures[rows[found], bins[found]] = signatures[rows[found], donors[found]]
        rows, bins = rows[~found], bins[~found]


def _densify_sparse(
    signatures: np.ndarray,
    filled: np.ndarray,
    texts: np.ndarray,
    orders: np.ndarray,
    ranks: np.ndarray,
) -> None:
    """Same result as probing, in O(filled * num_perm) per text: the best-ranked filled bin."""
    if len(texts) == 0:
        return
    rows, bins = np.nonzero(filled[texts])
    firsts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    best_rank = np.minimum.reduceat(ranks[:, bins].T, firsts, axis=0)
    donors = orders[np.arange(orders.shape[0]), best_rank]
    own = signatures[texts]
    signatures[texts] = np.where(filled[texts], own, np.take_along_axis(own, donors, axis=1))


def _shingle_hashes(batch: _Words, config: NearDuplicateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hash of every shingle and the index of its text in the batch."""
    k, keys = config.shingle_words, _hash_keys(config.seed)
    everywhere = _ngram_hashes_everywhere(batch, keys, k)
    within = batch.text_of_word[: len(everywhere)] == batch.text_of_word[k - 1 :]
    short = np.flatnonzero((batch.counts > 0) & (batch.counts < k))
    hashes = np.concatenate([everywhere[within], _whole_text_hashes(batch, keys, short)])
    texts = np.concatenate([batch.text_of_word[: len(everywhere)][within], short])
    return _mix64(hashes), texts


def _signatures_of_batch(
    texts: Sequence[str], config: NearDuplicateConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Densified one-permutation signatures and which texts have any shingle at all."""
    num_perm = config.num_perm
    keys = _hash_keys(config.seed)
    parts = [
        (hashes, text_index + offset)
        for offset, chunk in _chunks(texts, _HASH_CHARS)
        for hashes, text_index in [_shingle_hashes(_hash_words(chunk, keys), config)]
    ]
    hashes = np.concatenate([hashes for hashes, _ in parts])
    text_index = np.concatenate([text_index for _, text_index in parts])
    bins = ((hashes >> _SHIFT32) * np.uint64(num_perm)) >> _SHIFT32
    slots = text_index * num_perm + bins.astype(np.int64)
    signatures = np.full(len(texts) * num_perm, _EMPTY, dtype=np.uint32)
    np.minimum.at(signatures, slots, (hashes & _LOW32).astype(np.uint32))
    signatures = signatures.reshape(len(texts), num_perm)
    filled = np.bincount(slots, minlength=signatures.size).reshape(signatures.shape) > 0
    _densify(signatures, filled, config.seed)
    return signatures, filled.any(axis=1)


def _signatures(
    texts: Sequence[str], config: NearDuplicateConfig, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    signatures = np.empty((len(texts), config.num_perm), dtype=np.uint32)
    has_shingles = np.zeros(len(texts), dtype=bool)
    batches = [range(start, start + len(chunk)) for start, chunk in _chunks(texts, _BATCH_CHARS)]
    _lowercase_word_characters()  # built once here, not once per worker
    results = parallel.map_in_order(
        _signatures_of_range, batches, (texts, config), workers, part=_texts_of_batch
    )
    for batch, (batch_signatures, batch_has_shingles) in zip(batches, results, strict=True):
        signatures[batch.start : batch.stop] = batch_signatures
        has_shingles[batch.start : batch.stop] = batch_has_shingles
    return signatures, has_shingles


def _texts_of_batch(shared: tuple, batch: range) -> tuple[tuple, range]:
    texts, config = shared
    return (parallel.Window(texts, batch.start, batch.stop), config), batch


def _signatures_of_range(shared: tuple, batch: range) -> tuple[np.ndarray, np.ndarray]:
    texts, config = shared
    return _signatures_of_batch(texts[batch.start : batch.stop], config)


def build_tables() -> None:
    """Build the lookup table every word hash reads, here: forked workers then share it."""
    _lowercase_word_characters()


def signature_table(
    texts: Sequence[str], config: NearDuplicateConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Signature rows of ``texts``, and whether each text has a shingle at all, computed in
    this process: a worker's share of ``find_near_duplicates``; ``near_duplicates_among``
    finishes the job on the rows put together."""
    texts = _as_texts(texts, "text")
    if not texts:
        return np.empty((0, config.num_perm), dtype=np.uint32), np.zeros(0, dtype=bool)
    return _signatures_of_batch(texts, config)


def minhash_signatures(texts: Sequence[str], config: NearDuplicateConfig) -> np.ndarray:
    """One uint32 signature row per text; a text without words gets all ``0xFFFFFFFF``."""
    return _signatures(_as_texts(texts, "text"), config)[0]


# --- LSH and verification --------------------------------------------------------------------


def _candidate_probability(similarity: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - similarity**rows) ** bands


def lsh_bands(config: NearDuplicateConfig) -> tuple[int, int]:
    """(bands, rows), ``bands * rows == num_perm``: the most rows per band (fewest candidates)
    that still make a pair exactly at the threshold a candidate with probability >= 0.9.

    Candidates are verified, so an extra one costs a comparison while a missed pair is lost.
    """
    for rows in range(config.num_perm, 0, -1):
        bands, remainder = divmod(config.num_perm, rows)
        if remainder == 0 and (
            _candidate_probability(config.threshold, bands, rows) >= _MIN_CANDIDATE_PROBABILITY
        ):
            return bands, rows
    return config.num_perm, 1


def _row_keys(rows: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit key per row (a random linear form), equal for equal rows."""
    multipliers = np.random.default_rng([seed, rows.shape[1], 7]).integers(
        0, 2**64, rows.shape[1], dtype=np.uint64
    )
    keys = np.zeros(len(rows), dtype=np.uint64)
    for column, multiplier in enumerate(multipliers | np.uint64(1)):
        keys += rows[:, column].astype(np.uint64) * multiplier
    return keys


def band_keys(signatures: np.ndarray, band: int, rows: int, seed: int) -> np.ndarray:
    """The LSH key of every signature in ``band`` (its ``rows`` entries from ``band * rows``):
    rows with equal keys in a band share that band's bucket."""
    return _row_keys(signatures[:, band * rows : (band + 1) * rows], seed + band)


def _identical_representatives(signatures: np.ndarray, seed: int) -> np.ndarray:
    """For every row, the first row with exactly the same signature (often itself)."""
    _, first, inverse = np.unique(
        _row_keys(signatures, seed), return_index=True, return_inverse=True
    )
    representative = first[inverse]
    # A key collision between different signatures leaves the row as its own representative.
    same = (signatures == signatures[representative]).all(axis=1)
    return np.where(same, representative, np.arange(len(signatures)))


def _runs_of_equal(sorted_keys: np.ndarray) -> np.ndarray:
    """Run number of every element of a sorted array (equal neighbours share one)."""
    return np.cumsum(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) - 1


def _shared_buckets(signatures: np.ndarray, bands: int, rows: int, seed: int) -> list:
    """(row, ids of the LSH buckets it shares with another row), for rows sharing any."""
    members, bucket_ids, next_id = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0
    for band in range(bands if len(signatures) else 0):
        keys = band_keys(signatures, band, rows, seed)
        order = np.argsort(keys, kind="stable")
        run = _runs_of_equal(keys[order])
        shared = np.bincount(run)[run] > 1
        members.append(order[shared])
        bucket_ids.append(run[shared] + next_id)
        next_id += int(run[-1]) + 1
    member, bucket = np.concatenate(members), np.concatenate(bucket_ids)
    by_member = np.lexsort((bucket, member))
    member, bucket = member[by_member], bucket[by_member]
    if len(member) == 0:
        return []
    cuts = np.flatnonzero(np.r_[True, member[1:] != member[:-1]])
    ends = np.r_[cuts[1:], len(member)]
    return [
        (int(member[c]), bucket[c:e].tolist()) for c, e in zip(cuts.tolist(), ends, strict=True)
    ]


def _match_to_kept(
    signatures: np.ndarray, config: NearDuplicateConfig
) -> dict[int, tuple[int, float]]:
    """Greedy in row order: a row whose LSH buckets hold a kept row at least ``threshold``
    similar is matched to the most similar (earliest on ties); otherwise it is kept."""
    bands, rows = lsh_bands(config)
    kept_in_bucket: dict[int, list[int]] = {}
    matches: dict[int, tuple[int, float]] = {}
    unregistered = 0
    for row, buckets in _shared_buckets(signatures, bands, rows, config.seed):
        candidates = sorted({kept for b in buckets for kept in kept_in_bucket.get(b, ())})
        if candidates:
            similarities = (signatures[candidates] == signatures[row]).mean(axis=1)
            best = int(np.argmax(similarities))
            if similarities[best] >= config.threshold:
                matches[row] = (candidates[best], float(similarities[best]))
                continue
        for bucket in buckets:
            kept = kept_in_bucket.setdefault(bucket, [])
            if len(kept) < _MAX_KEPT_PER_BUCKET:
                kept.append(row)
            else:
                unregistered += 1
    if unregistered:
        logger.warning(
            "%d times a kept text was left out of an LSH bucket already holding %d kept texts "
            "(many similar texts below the threshold): near-duplicates of it may be missed",
            unregistered,
            _MAX_KEPT_PER_BUCKET,
        )
    return matches


def find_near_duplicates(
    texts: Sequence[str], config: NearDuplicateConfig, workers: int = 1
) -> list[NearDuplicate]:
    """Texts whose estimated Jaccard with an earlier kept text reaches the threshold.

    The kept copy is the first in input order, so the caller's ordering decides it. Texts
    without words have no shingles and are never reported. Identical signatures are grouped
    first, and an LSH bucket keeps at most 32 kept texts to verify against (warned when hit).
    Signatures are computed by up to ``workers`` processes, with the same result.
    """
    signatures, has_shingles = _signatures(_as_texts(texts, "text"), config, workers)
    return near_duplicates_among(signatures, has_shingles, config)


def near_duplicates_among(
    signatures: np.ndarray, has_shingles: np.ndarray, config: NearDuplicateConfig
) -> list[NearDuplicate]:
    """``find_near_duplicates`` of the texts whose ``signature_table`` rows are given."""
    present = np.flatnonzero(has_shingles)
    representative = present[_identical_representatives(signatures[present], config.seed)]
    distinct = np.unique(representative)
    matches = _match_to_kept(signatures[distinct], config)
    kept_of = {int(distinct[row]): (int(distinct[k]), s) for row, (k, s) in matches.items()}

    duplicates = []
    for index, rep in zip(present.tolist(), representative.tolist(), strict=True):
        if rep in kept_of:
            duplicates.append(NearDuplicate(index, *kept_of[rep]))
        elif rep != index:
            duplicates.append(NearDuplicate(index, rep, 1.0))
    logger.info("%d near-duplicates among %d texts", len(duplicates), len(signatures))
    return duplicates


# --- leakage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NgramTable:
    """Distinct validation n-gram hashes of one length, each with the validation texts using it."""

    hashes: np.ndarray  # sorted, distinct
    offsets: np.ndarray  # texts of hashes[i] are texts[offsets[i]:offsets[i + 1]]
    texts: np.ndarray
    prefilter: np.ndarray  # bit per top-bits bucket, packed small enough to stay in cache
    shift: np.uint64

    @classmethod
    def build(cls, hashes: np.ndarray, texts: np.ndarray) -> _NgramTable:
        order = np.lexsort((texts, hashes))
        hashes, texts = hashes[order], texts[order]
        repeated = np.zeros(len(hashes), dtype=bool)
        repeated[1:] = (hashes[1:] == hashes[:-1]) & (texts[1:] == texts[:-1])
        hashes, texts = hashes[~repeated], texts[~repeated]
        distinct, offsets = np.unique(hashes, return_index=True)
        bits = int(np.clip(len(distinct).bit_length() + 4, 16, 30))
        shift = np.uint64(64 - bits)
        buckets = np.zeros(1 << bits, dtype=bool)
        buckets[(distinct >> shift).astype(np.int64)] = True
        prefilter = np.packbits(buckets, bitorder="little")
        return cls(distinct, np.r_[offsets, len(hashes)], texts, prefilter, shift)

    def matches(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``hashes``, validation text) for every hit."""
        buckets = (hashes >> self.shift).astype(np.int64)
        maybe = np.flatnonzero((self.prefilter[buckets >> 3] >> (buckets & 7).astype(np.uint8)) & 1)
        found = np.searchsorted(self.hashes, hashes[maybe])
        found[found == len(self.hashes)] = 0
        hit = self.hashes[found] == hashes[maybe]
        positions, found = maybe[hit], found[hit]
        counts = self.offsets[found + 1] - self.offsets[found]
        first_slots = np.repeat(self.offsets[found] - np.cumsum(counts) + counts, counts)
        return np.repeat(positions, counts), self.texts[first_slots + np.arange(counts.sum())]


def _validation_tables(validation: Sequence[str], ngram: int) -> dict[int, _NgramTable]:
    """One table per n-gram length: ``ngram`` for long texts, each text's length for short ones."""
    keys = _hash_keys(_LEAKAGE_SEED)
    parts_by_length: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for offset, chunk in _chunks(validation, _HASH_CHARS):
        batch = _hash_words(chunk, keys)
        everywhere = _ngram_hashes_everywhere(batch, keys, ngram)
        starts = np.flatnonzero(_runs_within_one_text(batch, np.arange(len(everywhere)), ngram))
        parts_by_length.setdefault(ngram, []).append(
            (everywhere[starts], batch.text_of_word[starts] + offset)
        )
        short = np.flatnonzero((batch.counts > 0) & (batch.counts < ngram))
        for length in np.unique(batch.counts[short]).tolist():
            texts = short[batch.counts[short] == length]
            parts_by_length.setdefault(length, []).append(
                (_whole_text_hashes(batch, keys, texts), texts + offset)
            )
    return {
        length: _NgramTable.build(
            np.concatenate([hashes for hashes, _ in parts]),
            np.concatenate([texts for _, texts in parts]),
        )
        for length, parts in parts_by_length.items()
    }


def leaked_ngrams_index(
    train_texts: Sequence[str],
    validation_texts: Sequence[str],
    config: LeakageConfig,
    workers: int = 1,
) -> dict[int, list[int]]:
    """Validation index -> sorted training indices that share an ``ngram``-word run with it.

    A validation text shorter than ``ngram`` words leaks when a training text contains all of
    its words as one contiguous run. Training text is streamed in chunks, by up to ``workers``
    processes.
    """
    return leaked_ngrams_indexes({"training": train_texts}, validation_texts, config, workers)[
        "training"
    ]


def leaked_ngrams_indexes(
    corpora: dict[str, Sequence[str]],
    validation_texts: Sequence[str],
    config: LeakageConfig,
    workers: int = 1,
) -> dict[str, dict[int, list[int]]]:
    """``leaked_ngrams_index`` of each training corpus against the same validation texts: the
    validation n-grams are hashed once, and one set of workers shares the chunks of all."""
    tables = _validation_tables(_as_texts(validation_texts, "validation text"), config.ngram)
    corpora = {name: _as_texts(texts, "training text") for name, texts in corpora.items()}
    batches = [
        (name, range(start, start + len(chunk)))
        for name, texts in corpora.items()
        for start, chunk in _chunks(texts, _BATCH_CHARS)
    ]
    _lowercase_word_characters()  # built once here, not once per worker
    pairs = parallel.map_in_order(
        _leaks_in_range, batches, (corpora, tables), workers, part=_corpus_of_batch
    )
    found: dict[str, dict[int, list[int]]] = {}
    for name, texts in corpora.items():
        mine = [part for (of, _), part in zip(batches, pairs, strict=True) if of == name]
        leaks: dict[int, list[int]] = {}
        for pair in np.unique(np.concatenate(mine)) if mine else []:
            validation_index, training_index = divmod(int(pair), len(texts) + 1)
            leaks.setdefault(validation_index, []).append(training_index)
        logger.info(
            "%d of %d validation texts leak into %s", len(leaks), len(validation_texts), name
        )
        found[name] = leaks
    return found


def _corpus_of_batch(shared: tuple, task: tuple[str, range]) -> tuple[tuple, tuple]:
    """What scanning a batch of training texts needs: those texts, and the validation tables."""
    corpora, tables = shared
    name, batch = task
    return ({name: parallel.Window(corpora[name], batch.start, batch.stop)}, tables), task


def _leaks_in_range(shared: tuple, task: tuple[str, range]) -> np.ndarray:
    """Distinct (validation index * (training texts + 1) + training index) of a batch."""
    corpora, tables = shared
    name, batch = task
    train_texts = corpora[name]
    keys = _hash_keys(_LEAKAGE_SEED)
    pairs = [np.zeros(0, dtype=np.int64)]
    for offset, chunk in _chunks(train_texts[batch.start : batch.stop], _HASH_CHARS):
        words = _hash_words(chunk, keys)
        for length, table in tables.items():
            starts, validation = table.matches(_ngram_hashes_everywhere(words, keys, length))
            within = _runs_within_one_text(words, starts, length)
            training = words.text_of_word[starts[within]] + batch.start + offset
            pairs.append(validation[within] * (len(train_texts) + 1) + training)
    return np.unique(np.concatenate(pairs))
