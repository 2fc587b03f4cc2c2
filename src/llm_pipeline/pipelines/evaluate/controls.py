"""Controls for a judge: pairs of an intact and a damaged answer, made from the validation set.

A judge's score means something only if the judge can tell a good answer from a broken one. Each
validation example's reference answer is paired with a damaged copy whose damage one metric is
about, so the judge should score the intact text higher:

- relevance: another question's reference (different text, preferably on another topic);
- groundedness: the reference with its facts changed against the context: every number altered
  ("$5.95" -> "$9.15", "30 days" -> "12 days") and up to two key words it shares with the context
  (proper nouns first) swapped for words of other examples' contexts; only examples with one;
- coherence: the reference's words shuffled;
- fluency: character noise (about 15% of the characters swapped, dropped or inserted).

Every damage is seeded per example, so a control set is the same on every run and does not
change when examples are added after it. Pure text, no model: judge.py scores the pairs.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any

NOISE_RATE = 0.15
WORD_SWAPS = 2

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
# An email address, a URL or a domain: its words are not swapped.
_ADDRESS = re.compile(r"@|/|\w\.\w")
# Common words of four letters or more that carry no fact of their own.
# fmt: off
_STOPWORDS = frozenset((
    "about", "above", "after", "again", "also", "always", "among", "another", "anything",
    "away", "back", "been", "before", "being", "below", "between", "both", "came", "come",
    "comes", "could", "does", "doing", "done", "down", "during", "each", "either", "else",
    "even", "ever", "every", "from", "further", "give", "given", "gives", "have", "having",
    "here", "hers", "into", "itself", "just", "keep", "know", "like", "made", "make", "makes",
    "many", "more", "most", "much", "must", "need", "needs", "never", "next", "none", "only",
    "other", "ours", "over", "please", "same", "should", "since", "some", "such", "sure",
    "take", "than", "thank", "thanks", "that", "their", "them", "then", "there", "these",
    "they", "thing", "things", "this", "those", "though", "through", "thus", "under", "until",
    "upon", "very", "want", "were", "what", "when", "where", "whether", "which", "while",
    "will", "with", "within", "without", "would", "your", "yours", "yourself", "hello", "dear",
    "sorry", "happy", "glad", "help", "it's", "can't", "don't", "won't", "you're", "we're",
    "we'll", "you'll", "isn't", "aren't", "doesn't", "didn't", "there's", "that's", "let's",
))
# fmt: on


@dataclass(frozen=True)
class ControlPair:
    """One control: the example it was made from, its intact and its damaged answer, and the
    context groundedness is judged against (None for the other metrics)."""

    index: int
    intact: str
    damaged: str
    context: str | None = None


def alter_numbers(text: str, rng: random.Random, avoid: str = "") -> str:
    """``text`` with every number replaced by a different one of the same shape (digit count,
    separators), which does not occur in ``avoid`` (the context) either."""

    def replace(match: re.Match[str]) -> str:
        original = match.group()
        for _ in range(20):
            digits = [
                rng.choice("123456789" if position == 0 and len(original) > 1 else string.digits)
                if char.isdigit()
                else char
                for position, char in enumerate(original)
            ]
            candidate = "".join(digits)
            if candidate != original and candidate not in avoid:
                return candidate
        return str(int(original.replace(",", "").split(".")[0]) + 1)  # a different number anyway

    return _NUMBER.sub(replace, text)


def key_words(text: str, context: str) -> tuple[list[str], list[str]]:
    """Words of ``text`` that also occur in ``context`` and carry a fact (not a stopword, not
    part of an address such as an email or URL), each once: the proper nouns (capitalised away
    from a sentence start) and the others."""
    in_context = context_words(context)
    proper: list[str] = []
    plain: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        lower = word.lower()
        if lower in _STOPWORDS or lower not in in_context or word in proper or word in plain:
            continue
        if _ADDRESS.search(_token_around(text, match.start(), match.end())):
            continue
        before = text[: match.start()].rstrip()
        starts_sentence = not before or before[-1] in ".!?:;"
        (proper if word[0].isupper() and not starts_sentence else plain).append(word)
    return proper, plain


def context_words(context: str) -> set[str]:
    """The lower-cased words of ``context``, hyphenated ones whole and in parts."""
    lower = context.lower()
    return set(re.findall(r"[a-z][a-z'-]*", lower)) | set(re.findall(r"[a-z']+", lower))


def _token_around(text: str, start: int, end: int) -> str:
    """The whitespace-delimited token that holds ``text[start:end]``."""
    left = text.rfind(" ", 0, start) + 1
    right = text.find(" ", end)
    return text[left : right if right >= 0 else len(text)]


def word_pool(texts: list[str]) -> list[str]:
    """The distinct fact-carrying words of ``texts``, sorted (a stable pool to draw swaps from)."""
    return sorted(
        {
            match.group()
            for text in texts
            for match in _WORD.finditer(text)
            if match.group().lower() not in _STOPWORDS
            and not _ADDRESS.search(_token_around(text, match.start(), match.end()))
        }
    )


def contradict_context(
    reference: str, context: str, pool: list[str], rng: random.Random
) -> str | None:
    """The reference with its facts changed against ``context``: every number altered and up
    to ``WORD_SWAPS`` key words swapped for pool words absent from the context (a capitalised
    word for a capitalised one), proper nouns first, the others picked at random. None when
    there is nothing to change."""
    damaged = alter_numbers(reference, rng, avoid=context)
    in_context = context_words(context)
    proper, plain = key_words(reference, context)
    swapped = 0
    for word in proper + rng.sample(plain, len(plain)):
        if swapped == WORD_SWAPS:
            break
        choices = [
            other
            for other in pool
            if other.lower() not in in_context and other[0].isupper() == word[0].isupper()
        ]
        if not choices:
            continue
        damaged = re.sub(rf"\b{re.escape(word)}\b", rng.choice(choices), damaged)
        swapped += 1
    return damaged if damaged != reference else None


def shuffle_words(text: str, rng: random.Random) -> str | None:
    """The words of ``text`` in another order (None when no other order exists)."""
    words = text.split()
    if len(set(words)) < 2:
        return None
    shuffled = list(words)
    while shuffled == words:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def character_noise(text: str, rng: random.Random, rate: float = NOISE_RATE) -> str | None:
    """``text`` with ``rate`` of its characters (at least one) swapped with the next, dropped,
    or preceded by an inserted letter (None for an empty text)."""
    if not text:
        return None
    count = max(1, round(rate * len(text)))
    for _ in range(10):
        chars = list(text)
        # From the end, so an edit does not move the positions still to be edited.
        for position in sorted(rng.sample(range(len(text)), count), reverse=True):
            edit = rng.choice(("swap", "drop", "insert"))
            if edit == "swap" and position + 1 < len(chars):
                chars[position], chars[position + 1] = chars[position + 1], chars[position]
            elif edit == "drop" and len(chars) > 1:
                del chars[position]
            else:
                chars.insert(position, rng.choice(string.ascii_lowercase))
        noisy = "".join(chars)
        if noisy != text:
            return noisy
    return None


def control_pairs(rows: list[dict[str, Any]], seed: int) -> dict[str, list[ControlPair]]:
    """Per judged metric, the control pairs made from ``rows`` (their ``reference`` answers and,
    for groundedness, their ``context``). An example that cannot be damaged for a metric (one
    word, no fact shared with its context, no other reference) gives no pair for it."""
    references = [str(row.get("reference") or "") for row in rows]
    contexts = [_context(row) for row in rows]
    pool = word_pool([context for context in contexts if context])
    pairs: dict[str, list[ControlPair]] = {
        "groundedness": [],
        "relevance": [],
        "coherence": [],
        "fluency": [],
    }
    for index, reference in enumerate(references):
        if not reference.strip():
            continue

        def rng(metric: str, index: int = index) -> random.Random:
            # A string seed is hashed deterministically: the same damage on every run.
            return random.Random(f"{seed}:{metric}:{index}")

        other = _other_reference(index, references, contexts, rng("relevance"))
        if other is not None:
            pairs["relevance"].append(ControlPair(index, reference, other))
        context = contexts[index]
        if context is not None:
            damaged = contradict_context(reference, context, pool, rng("groundedness"))
            if damaged is not None:
                pairs["groundedness"].append(ControlPair(index, reference, damaged, context))
        for metric, damage in (("coherence", shuffle_words), ("fluency", character_noise)):
            damaged = damage(reference, rng(metric))
            if damaged is not None:
                pairs[metric].append(ControlPair(index, reference, damaged))
    return pairs


def _other_reference(
    index: int, references: list[str], contexts: list[str | None], rng: random.Random
) -> str | None:
    """Another example's reference with a different text, from another topic (context) when
    there is one."""
    different = [
        i for i, text in enumerate(references) if text.strip() and text != references[index]
    ]
    elsewhere = [i for i in different if contexts[i] is None or contexts[i] != contexts[index]]
    choices = elsewhere or different
    return references[rng.choice(choices)] if choices else None


def _context(row: dict[str, Any]) -> str | None:
    context = row.get("context")
    return context if isinstance(context, str) and context.strip() else None
