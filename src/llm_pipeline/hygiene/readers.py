"""Raw files to records: decode text without guessing wrong, read each format, refuse the rest.

Each file yields records and quarantine entries naming the line (page, row) and the rule, and
``rows_seen`` counts both, so ingest can prove per file that nothing read was dropped. pypdf,
bs4, trafilatura, pyarrow and charset-normalizer are imported only by the reader that needs them.
HTML pages are read by ``hygiene.html``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl", ".csv", ".parquet")


@dataclass(frozen=True)
class Quarantined:
    """A refused row: ``line`` is the text line, pdf page or data row; 0 for a refused file."""

    source: str
    line: int
    rule: str
    detail: str
    record: Any


@dataclass(frozen=True)
class RawRecord:
    """One row read: a JSON object, a csv/parquet row, or ``{"text": ...}`` for a document."""

    source: str
    line: int
    fields: dict[str, Any]


@dataclass
class FileReading:
    """What one file gave; ``rows_seen == len(records) + len(quarantined)`` for every file."""

    source: str
    rows_seen: int
    records: list[RawRecord] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    encoding: str | None = None
    # How an HTML page was read: "main_content" (the extractor's) or "whole_page" (no main
    # content found); None for other formats.
    html_text_from: str | None = None


class ReaderConfig(BaseModel):
    """Limits and choices of the raw-file readers (``ingest.reader``: the values are in
    conf/base/parameters_ingest.yml)."""

    model_config = ConfigDict(extra="forbid")

    max_line_bytes: int = Field(ge=1)
    max_file_bytes: int = Field(ge=1)
    allow_detected_encodings: bool
    pdf_document_per: Literal["file", "page"]


# --- Decoding ------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16: its BOM starts like UTF-16-LE's
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFF_BYTES = 8192
# C0 controls and DEL, except tab, line feed, vertical tab, form feed, carriage return, escape.
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 27), *range(28, 32), 127])
_MAX_CONTROL_SHARE = 0.05
_ASCII = bytes(range(128))
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_MAX_CHAOS = 0.1
_MAX_IMPLAUSIBILITY = 2
_SCORED_CHARS = 1_000_000  # readings that differ only further on tie, and are refused
# Never taken from detection: ASCII and UTF-8 already failed, UTF-7 turns ASCII into other
# text, and UTF-16/32 without a byte-order mark are guesses about byte order.
_UNDETECTABLE = ("ascii", "utf_8", "utf_7", "utf_16", "utf_32")

# Non-ASCII letters of the languages legacy code pages were made for. Decoding with the wrong
# code page gives letters no single language uses together ("trčs" for "très").
_ALPHABETS = tuple(
    frozenset(letters)
    for letters in (
        "àâæçéèêëîïôœùûüÿ",  # French
        "áéíñóúü",  # Spanish
        "àáâãçéêíóôõú",  # Portuguese
        "àèéìíîòóùú",  # Italian
        "àçèéíïòóúü",  # Catalan
        "äöüß",  # German
        "áéèëïóöü",  # Dutch
        "åæøé",  # Danish, Norwegian
        "åäöé",  # Swedish
        "åäöšž",  # Finnish
        "áæðéíóöúýþ",  # Icelandic
        "ąćęłńóśźż",  # Polish
        "áčďéěíňóřšťúůýž",  # Czech
        "áäčďéíĺľňóôŕšťúýž",  # Slovak
        "áéíóöőúüű",  # Hungarian
        "ăâîșțşţ",  # Romanian
        "čćđšž",  # Croatian, Bosnian, Slovene
        "âçğıîöşü",  # Turkish
        "ąčęėįšųūž",  # Lithuanian
        "āčēģīķļņšūž",  # Latvian
        "äöõüšž",  # Estonian
        "çë",  # Albanian
        "ċġħż",  # Maltese
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",  # Russian
        "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",  # Ukrainian
        "абвгдеёжзійклмнопрстуўфхцчшыьэюя",  # Belarusian
        "абвгдежзийклмнопрстуфхцчшщъьюя",  # Bulgarian
        "абвгдђежзијклљмнњопрстћуфхцчџш",  # Serbian
        "абвгдѓежзѕијклљмнњопрстќуфхцчџш",  # Macedonian
    )
)
# Non-letters that do sit inside words: apostrophe, middle dot (Catalan), soft hyphen.
_WORD_PUNCTUATION = "\u2019\u00b7\u00ad\u2011"
# Symbols that do touch words: "Brand™", "25°C", "€5".
_COMMON_SYMBOLS = "©®™°€$£¥"
# Letters of the scripts that separate words with spaces (Latin, Greek, Cyrillic).
_SPACED = "[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0370-\u03ff\u0400-\u04ff]"
# Where a character ({c}: those of its kind in the text) is out of place in real text. Each
# distinct character so placed counts one, or the clue counts one if not ``per_character``.
_CLUES = {
    "in_word": (f"(?<={_SPACED})[{{c}}](?={_SPACED})", True),  # "poszed³em": Polish as cp1252
    "symbol": (f"(?<={_SPACED})[{{c}}]|[{{c}}](?={_SPACED})", True),  # "fo¬"
    "capital": ("[a-z][{c}]", False),  # "broÁn"
    "foreign": ("[A-Za-z][{c}]|[{c}][A-Za-z]", False),  # "cafй": "café" as cp1251
    "mark": (r"(?<![^\W\d_])[{c}]", True),  # "abc ้": "abc é" as cp874, a mark on nothing
}
_ONE_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "FULLWIDTH": "CJK"}


def decode_text(
    source: str, data: bytes, config: ReaderConfig
) -> tuple[str | None, str | None, Quarantined | None]:
    """``(text, encoding, None)``, or ``(None, None, problem)``; bytes are never replaced.

    UTF-8 (BOM or not) and BOM-marked UTF-16/32 are read as such; other text only when
    detection finds exactly one plausible reading.
    """
    if not data:
        return None, None, Quarantined(source, 1, "empty_file", "the file is empty", None)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_declared(source, data, bom, encoding)
    binary = _binary_evidence(data[:_SNIFF_BYTES])
    if binary:
        return None, None, Quarantined(source, 0, "binary_file", binary, None)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        utf8_error = error
    else:
        return text, "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8", None
    why = "detected encodings are not allowed (allow_detected_encodings: false)"
    if config.allow_detected_encodings:
        text, encoding, why = _detect_encoding(data)
        if text is not None:
            logger.info("%s is not UTF-8; decoded as %s", source, encoding)
            return text, encoding, None
    line = data.count(b"\n", 0, utf8_error.start) + 1
    detail = (
        f"byte {utf8_error.start} (line {line}): not UTF-8 ({utf8_error.reason}), and {why}; "
        "save the file as UTF-8"
    )
    return None, None, Quarantined(source, 0, "invalid_utf8", detail, None)


def _decode_declared(
    source: str, data: bytes, bom: bytes, encoding: str
) -> tuple[str | None, str | None, Quarantined | None]:
    try:
        return data[len(bom) :].decode(encoding), encoding, None
    except UnicodeDecodeError as error:
        line = data[len(bom) : len(bom) + error.start].decode(encoding).count("\n") + 1
        detail = (
            f"byte {len(bom) + error.start} (line {line}): its byte-order mark says {encoding}, "
            f"but {error.reason}"
        )
        return None, None, Quarantined(source, 0, "invalid_encoding", detail, None)


def _binary_evidence(head: bytes) -> str | None:
    nul = head.find(b"\x00")
    if nul != -1:
        return f"NUL byte at offset {nul}: binary data (or UTF-16/32 without a byte-order mark)"
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls > _MAX_CONTROL_SHARE * len(head):
        return f"{controls} of the first {len(head)} bytes are control characters: binary data"
    return None


def _detect_encoding(data: bytes) -> tuple[str | None, str | None, str]:
    """The text and encoding when exactly one reading is plausible, else why not.

    charset-normalizer alone picks the wrong code page for ordinary French or Polish (cp1257
    for cp1252: "trčs"), so its low-chaos candidates are ranked by ``_implausibility``.
    """
    if _looks_like_damaged_utf8(data):
        return None, None, "the rest of the file is UTF-8, so this is damage, not an encoding"
    from charset_normalizer import from_bytes

    readings: dict[str, tuple[float, str]] = {}
    for match in from_bytes(data):
        if match.chaos > _MAX_CHAOS or match.encoding.startswith(_UNDETECTABLE):
            continue
        try:
            text = str(match)
        except UnicodeDecodeError:  # it judged samples; the whole file must decode
            continue
        if text not in readings or match.chaos < readings[text][0]:
            readings[text] = (match.chaos, match.encoding)
    if not readings:
        return None, None, "no encoding reads it as text"
    ranked = sorted(
        (_implausibility(text[:_SCORED_CHARS]), chaos, encoding, text)
        for text, (chaos, encoding) in readings.items()
    )
    score, chaos, encoding, text = ranked[0]
    if score > _MAX_IMPLAUSIBILITY:
        return None, None, f"its likeliest reading, as {encoding}, mixes too many alphabets"
    rivals = [other for s, c, other, _ in ranked[1:] if (s, c) == (score, chaos)]
    if rivals:
        return None, None, f"{encoding} and {rivals[0]} read it differently, equally plausibly"
    return text, _likeliest_name(data, text, encoding), ""


def _likeliest_name(data: bytes, text: str, encoding: str) -> str:
    """cp1252 when it reads the same text: Western files come from it, not from cp1250."""
    try:
        same = encoding != "cp1252" and data.decode("cp1252") == text
    except UnicodeDecodeError:
        same = False
    return "cp1252" if same else codecs.lookup(encoding).name


def _looks_like_damaged_utf8(data: bytes) -> bool:
    """Most non-ASCII bytes form UTF-8 sequences: a code page would turn them into mojibake."""
    non_ascii = len(data.translate(None, _ASCII))
    in_sequences = sum(map(len, _UTF8_SEQUENCE.findall(data)))
    return non_ascii > 0 and 2 * in_sequences >= non_ascii


def _implausibility(text: str) -> int:
    """Alphabets, scripts and out-of-place characters a reading needs; mojibake needs more."""
    letters, scripts, suspects, controls = _sort_characters(text)
    misplaced = 0
    for clue, (pattern, per_character) in _CLUES.items():
        if suspects[clue]:
            found = re.findall(pattern.replace("{c}", re.escape("".join(suspects[clue]))), text)
            misplaced += len(set(found)) if per_character else bool(found)
    return _alphabets_needed(letters) + len(scripts) + controls + misplaced


def _sort_characters(text: str) -> tuple[set[str], set[str], dict[str, set[str]], int]:
    """Non-ASCII letters to cover, other scripts, characters for each clue, control count."""
    letters: set[str] = set()
    scripts: set[str] = set()
    suspects: dict[str, set[str]] = {clue: set() for clue in _CLUES}
    controls = 0
    for char in {c for c in set(text) if ord(c) > 127}:
        category = unicodedata.category(char)
        script = unicodedata.name(char, "?").split(" ")[0]
        script = _ONE_SCRIPT.get(script, script)
        if category[0] == "L" and char not in "ªº":
            if script in ("LATIN", "CYRILLIC"):
                letters.update(c for c in char.lower() if ord(c) > 127 and c.isalpha())
            else:
                scripts.add(script)
            if char.isupper():
                suspects["capital"].add(char)
            if script not in ("LATIN", "CJK"):
                suspects["foreign"].add(char)
        elif category in ("Cc", "Co", "Cn", "Cs"):
            controls += 1
        elif category[0] == "M":
            suspects["mark"].add(char)
            if script not in ("COMBINING", "LATIN"):
                suspects["foreign"].add(char)
        elif category[0] == "S" and char not in _COMMON_SYMBOLS:
            suspects["symbol"].add(char)
        elif category[0] != "Z" and char not in _WORD_PUNCTUATION:
            suspects["in_word"].add(char)
    return letters, scripts, suspects, controls


def _alphabets_needed(letters: set[str]) -> int:
    """How many languages' alphabets cover ``letters`` (greedily); a letter none has counts one."""
    needed = 0
    while letters:
        widest = max(_ALPHABETS, key=lambda alphabet: len(letters & alphabet))
        if not letters & widest:
            return needed + len(letters)
        letters = letters - widest
        needed += 1
    return needed


# --- Reading -------------------------------------------------------------------------------


def read_raw_file(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    """Records and quarantine entries of one raw file, chosen by its suffix."""
    suffix = PurePosixPath(source).suffix.lower()
    if len(data) > config.max_file_bytes:
        detail = f"{len(data)} bytes, over max_file_bytes ({config.max_file_bytes})"
        return _refused(Quarantined(source, 0, "file_too_large", detail, None))
    if suffix not in _READERS:
        detail = f"{suffix or 'no suffix'} is not one of {', '.join(SUPPORTED_SUFFIXES)}"
        return _refused(Quarantined(source, 0, "unsupported_format", detail, None))
    if not data:
        return _refused(Quarantined(source, 1, "empty_file", "the file is empty", None))
    return _READERS[suffix](source, data, config)


def _refused(problem: Quarantined, encoding: str | None = None) -> FileReading:
    """A file refused whole counts as one row, so that it still shows in the accounting."""
    return FileReading(problem.source, 1, [], [problem], encoding)


def _reading(
    source: str,
    records: list[RawRecord],
    quarantined: list[Quarantined],
    encoding: str | None = None,
) -> FileReading:
    if not records and not quarantined:
        return _refused(Quarantined(source, 1, "empty_file", "no rows in the file", None), encoding)
    return FileReading(source, len(records) + len(quarantined), records, quarantined, encoding)


def _document(source: str, text: str, encoding: str | None) -> FileReading:
    if not text.strip():
        problem = Quarantined(source, 1, "empty_file", "no text, only whitespace", None)
        return _refused(problem, encoding)
    return FileReading(source, 1, [RawRecord(source, 1, {"text": text})], [], encoding)


def _read_plain_text(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    text, encoding, problem = decode_text(source, data, config)
    return _refused(problem) if problem else _document(source, text, encoding)


def _read_html(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    """The page's main content as one document; the whole page's text when it has none."""
    from llm_pipeline.hygiene import html

    text, encoding, problem = decode_text(source, data, config)
    if problem:
        return _refused(problem)
    page = html.page_text(text)
    reading = _document(source, page.text, encoding)
    reading.html_text_from = page.source
    return reading


def _oversized(text: str, limit: int) -> int | None:
    """The UTF-8 size of ``text`` when it is over ``limit``, encoding only texts that might be."""
    if len(text) * 4 <= limit:  # no character takes more than four bytes
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


def _too_long(source: str, line: int, text: str, limit: int) -> Quarantined | None:
    size = _oversized(text, limit)
    if size is None:
        return None
    detail = f"{size} bytes, over max_line_bytes ({limit})"
    return Quarantined(source, line, "line_too_long", detail, text[:200] + "…")


_JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _read_json_lines(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    text, encoding, problem = decode_text(source, data, config)
    if problem:
        return _refused(problem)
    records, quarantined = [], []
    # Split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        too_long = _too_long(source, number, line, config.max_line_bytes)
        if too_long:
            quarantined.append(too_long)
            continue
        value, rule, detail = _parse_json_object(line)
        if value is None:
            quarantined.append(Quarantined(source, number, rule, detail, line[:2000]))
        else:
            records.append(RawRecord(source, number, value))
    return _reading(source, records, quarantined, encoding)


def _parse_json_object(line: str) -> tuple[dict | None, str, str]:
    """``(object, "", "")``, or ``(None, rule, detail)``."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return None, "malformed_json", str(error)
    except RecursionError:
        return None, "malformed_json", "nested too deeply to parse"
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), "a number")
        return None, "not_an_object", f"expected a JSON object, got {kind}"
    if _SURROGATE_ESCAPE.search(line):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            detail = "a \\u escape names a lone surrogate, which is not a character"
            return None, "malformed_json", detail
    return value, "", ""


def _read_csv(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    """Rows as ``{column: text}``; a row with the wrong number of fields is refused alone.

    The stdlib reader, not pandas: pandas silently shifts a row with one field too many into
    the index, or drops the extra field, and pads short rows.
    """
    text, encoding, problem = decode_text(source, data, config)
    if problem:
        return _refused(problem)
    # The field limit is process-wide; only ever raised, and max_file_bytes bounds memory.
    csv.field_size_limit(max(csv.field_size_limit(), config.max_file_bytes))
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    records, quarantined = [], []
    try:
        header = next((row for row in rows if row), None)
        if header is not None and len(set(header)) < len(header):
            repeated = sorted({name for name in header if header.count(name) > 1})
            detail = f"the header repeats column names {repeated}"
            return _refused(Quarantined(source, 0, "unreadable_csv", detail, None), encoding)
        number = 0
        for row in rows:
            if not row:
                continue
            number += 1
            problem = _too_long(source, number, ",".join(row), config.max_line_bytes)
            if problem is None and len(row) != len(header):
                detail = (
                    f"{len(row)} fields where the header has {len(header)} "
                    f"(file line {rows.line_num})"
                )
                problem = Quarantined(source, number, "wrong_field_count", detail, row)
            if problem:
                quarantined.append(problem)
            else:
                records.append(RawRecord(source, number, dict(zip(header, row, strict=True))))
    except csv.Error as error:
        detail = f"file line {rows.line_num}: {error}"
        return _refused(Quarantined(source, 0, "unreadable_csv", detail, None), encoding)
    return _reading(source, records, quarantined, encoding)


def _read_parquet(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(pa.BufferReader(data)).to_pylist()  # refuses repeated columns
    except (pa.ArrowException, OSError, ValueError) as error:
        detail = f"{type(error).__name__}: {error}"
        return _refused(Quarantined(source, 0, "unreadable_parquet", detail, None))
    records, quarantined = [], []
    for number, row in enumerate(rows, start=1):
        size_text = "".join(str(value) for value in row.values())
        problem = _too_long(source, number, size_text, config.max_line_bytes)
        if problem:
            quarantined.append(problem)
        else:
            records.append(RawRecord(source, number, row))
    return _reading(source, records, quarantined)


def _read_pdf(source: str, data: bytes, config: ReaderConfig) -> FileReading:
    """Text per page, joined per file or one record per page; a page without text is refused."""
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            detail = "encrypted with a password"
            return _refused(Quarantined(source, 0, "unreadable_pdf", detail, None))
        pages = list(reader.pages)
    except Exception as error:  # pypdf raises many kinds of error on damaged files
        detail = f"{type(error).__name__}: {error}"
        return _refused(Quarantined(source, 0, "unreadable_pdf", detail, None))
    texts: list[tuple[int, str]] = []
    quarantined = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text()
        except Exception as error:  # one damaged page must not cost the others
            detail = f"page {number}: {type(error).__name__}: {error}"
            quarantined.append(Quarantined(source, number, "unreadable_pdf", detail, None))
            continue
        if text.strip():
            texts.append((number, text))
    with_text = {number for number, _ in texts} | {q.line for q in quarantined}
    blank = [number for number in range(1, len(pages) + 1) if number not in with_text]
    for number in blank:
        detail = (
            f"page {number} has no extractable text ({len(blank)} of {len(pages)} pages have "
            "none: scanned images need OCR first)"
        )
        quarantined.append(Quarantined(source, number, "pdf_page_without_text", detail, None))
    quarantined.sort(key=lambda q: q.line)
    if config.pdf_document_per == "page":
        records = [RawRecord(source, number, {"text": text}) for number, text in texts]
    else:
        joined = "\n\n".join(text for _, text in texts)
        records = [RawRecord(source, texts[0][0], {"text": joined})] if texts else []
    return _reading(source, records, quarantined)


_READERS: dict[str, Callable[[str, bytes, ReaderConfig], FileReading]] = {
    ".txt": _read_plain_text,
    ".md": _read_plain_text,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".jsonl": _read_json_lines,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
