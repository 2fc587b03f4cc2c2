"""Words and BM25: the lexical half of passage search, numpy only.

BM25 (Robertson and Zaragoza, "The Probabilistic Relevance Framework", 2009) with Lucene's
non-negative idf. Postings are kept per term, so scoring a query touches only the passages
that share a word with it, and nothing grows with (passages x vocabulary).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+")

# Function words plus the courtesies that open and close customer messages ("Hi, I'm Maya.
# ... Thanks!"): they say nothing about which passage answers.
STOP_WORDS = frozenset(
    """
    a about after again all also am an and any are as at be because been before being both but
    by can could d did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just ll m me
    more most my myself no nor not now of off on once only or other our ours ourselves out over
    own re s same she should so some such t than that the their theirs them themselves then
    there these they this those through to too under until up ve very was we were what when
    where which while who whom why will with would you your yours yourself yourselves
    hi hello hey dear thanks thank please cheers regards name ok okay
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def words(text: str, stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """Lowercased ``\\w+`` tokens of ``text``, stop words out."""
    return [word for word in _WORD.findall(text.lower()) if word not in stop_words]


class BM25:
    """BM25 scores of queries against a fixed list of texts."""

    def __init__(
        self, texts: list[str], k1: float, b: float, stop_words: frozenset[str] = STOP_WORDS
    ) -> None:
        self.k1, self.b, self.stop_words = k1, b, frozenset(stop_words)
        counts = [Counter(words(text, self.stop_words)) for text in texts]
        self.lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        self.average_length = float(self.lengths.mean()) if len(texts) else 0.0
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for index, count in enumerate(counts):
            for term, frequency in count.items():
                indices, frequencies = postings.setdefault(term, ([], []))
                indices.append(index)
                frequencies.append(frequency)
        self.postings = {
            term: (np.array(indices), np.array(frequencies, dtype=np.float64))
            for term, (indices, frequencies) in postings.items()
        }
        total = len(texts)
        self.idf = {
            term: math.log(1.0 + (total - len(indices) + 0.5) / (len(indices) + 0.5))
            for term, (indices, _) in self.postings.items()
        }

    def scores(self, query: str) -> np.ndarray:
        """One score per text: 0 where it shares no word with ``query``."""
        scores = np.zeros(len(self.lengths))
        if not self.average_length:
            return scores
        norms = self.k1 * (1.0 - self.b + self.b * self.lengths / self.average_length)
        for term in dict.fromkeys(words(query, self.stop_words)):
            if term in self.postings:
                indices, frequencies = self.postings[term]
                scores[indices] += (
                    self.idf[term] * frequencies * (self.k1 + 1.0) / (frequencies + norms[indices])
                )
        return scores

    def settings(self) -> dict[str, Any]:
        """What rebuilds these scores from the same texts (the index file records it)."""
        return {
            "k1": self.k1,
            "b": self.b,
            "stop_words": sorted(self.stop_words),
            "average_length": self.average_length,
            "terms": len(self.postings),
        }


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening))\b(?: there| team)?"
    r"[\s,!.]*",
    re.IGNORECASE,
)
_SALUTATION = re.compile(
    r"^(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening))\b"
    r"(?:\s+[\w'-]+){0,2}\s*[,!.:]\s*",
    re.IGNORECASE,
)
_INTRODUCTION = re.compile(r"^(?:i'm|i am|this is|my name is|it's)\s+[\w'-]+[\s,!.]*$", re.I)
_THANKS = re.compile(
    r"^(?:(?:many )?thanks|thank you|cheers|(?:best |kind |warm )?regards|thx)"
    r"(?: (?:so much|very much|a lot|in advance|again))*[\s,.!]*$",
    re.IGNORECASE,
)


def without_courtesies(message: str) -> str:
    """``message`` without an opening greeting or introduction and a closing thanks.

    "Hi, I'm Maya. How long do refunds take? Thanks!" becomes "How long do refunds take?": a
    name and a greeting pull a sentence embedding towards nothing the documents say. A message
    of courtesies only is returned as it was.
    """
    sentences = _SENTENCE.split(message.strip())
    while sentences:
        rest = _GREETING.sub("", sentences[0], count=1)
        if rest and not _INTRODUCTION.match(rest) and not _THANKS.match(rest):
            sentences[0] = rest
            break
        sentences.pop(0)
    while sentences and _THANKS.match(sentences[-1]):
        sentences.pop()
    return " ".join(sentences) or message


def without_salutation(answer: str) -> str:
    """``answer`` without an opening salutation of a greeting and at most two words ("Hi
    Isla!", "Hello there,", "Hi Priya,"): a past answer shown to a new customer must not greet
    them by another's name. An answer of a salutation only is returned as it was."""
    rest = _SALUTATION.sub("", answer.strip(), count=1)
    return rest if rest else answer.strip()
