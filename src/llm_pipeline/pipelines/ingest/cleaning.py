"""Text cleaning: Unicode normalisation, control characters, whitespace, repeated boilerplate.

Every step is a regular expression or a C-level call over the whole text, never a Python loop
over characters, so cleaning keeps pace with reading.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# C0 and C1 controls except tab and newline, zero-width and bidirectional marks, BOM.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x0c]")
_ODD_SPACE = "\t\v\xa0\u2000-\u200a\u202f\u205f\u3000"
# Only runs that change: two or more spaces, or any space other than " " (a pattern that
# matched every single space would rebuild the string at every word).
_SPACES = re.compile(f"[ {_ODD_SPACE}]{{2,}}|[{_ODD_SPACE}]")
_SPACE_AT_LINE_EDGE = re.compile(r" \n ?|\n ")
_BLANK_LINES = re.compile(r"\n{3,}")
# ASCII that ``isprintable`` accepts once tabs and newlines count as spaces: deleting these
# from the bytes of an ASCII text leaves only its control characters, four times faster.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n"


class CleaningConfig(BaseModel):
    """How text is cleaned and which lengths are kept (``ingest.cleaning``: the values are in
    conf/base/parameters_ingest.yml)."""

    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"]
    remove_control_characters: bool
    min_document_chars: int = Field(ge=0)
    max_document_chars: int = Field(ge=1)
    min_message_chars: int = Field(ge=0)
    max_message_chars: int = Field(ge=1)
    boilerplate_min_documents: int = Field(ge=2)
    boilerplate_min_line_chars: int = Field(ge=1)


def clean_text(text: str, config: CleaningConfig) -> str:
    """Normalised Unicode, no control characters, single spaces, at most one blank line.

    Python's regular expressions scan at tens of MB/s, C string methods at GB/s: each
    substitution runs only when a cheap membership test says it has something to change.
    """
    if text.isascii():  # ASCII is the same in every normal form
        printable = not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    else:
        text = unicodedata.normalize(config.unicode_form, text)
        # isprintable() is False for controls, odd spaces and line separators alike.
        printable = text.replace("\n", " ").replace("\t", " ").isprintable()
    if not printable:
        text = _LINE_BREAKS.sub("\n", text)
        if config.remove_control_characters:
            text = _CONTROL.sub("", text)
        text = _SPACES.sub(" ", text)
    elif "\t" in text or "  " in text:
        text = _SPACES.sub(" ", text)
    if "\n" in text:  # one memchr spares three slower searches for two-character needles
        if " \n" in text or "\n " in text:
            text = _SPACE_AT_LINE_EDGE.sub("\n", text)
        if "\n\n\n" in text:
            text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def boilerplate_lines(texts: Iterable[str], config: CleaningConfig) -> set[str]:
    """Lines that recur in at least ``boilerplate_min_documents`` documents (headers, footers)."""
    seen_in: Counter[str] = Counter()
    for text in texts:
        seen_in.update(
            {line for line in text.split("\n") if len(line) >= config.boilerplate_min_line_chars}
        )
    return {line for line, count in seen_in.items() if count >= config.boilerplate_min_documents}


def remove_lines(text: str, lines: set[str]) -> str:
    """``text`` without the given lines, blank runs squeezed again."""
    if not lines:
        return text
    kept = "\n".join(line for line in text.split("\n") if line not in lines)
    return _BLANK_LINES.sub("\n\n", kept).strip()
