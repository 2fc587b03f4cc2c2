"""Tests for the raw-file readers: each format, each quarantine rule, and that rows add up."""

from __future__ import annotations

import codecs
import io
import random
import subprocess
import sys

import pandas as pd
import pytest
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from support import parameters_of

from llm_pipeline.hygiene.readers import (
    SUPPORTED_SUFFIXES,
    FileReading,
    ReaderConfig,
    decode_text,
    read_raw_file,
)


def reader_config(**overrides: object) -> ReaderConfig:
    """conf/base's ``ingest.reader`` with ``overrides``."""
    return ReaderConfig.model_validate(parameters_of("ingest.reader", env="base", **overrides))


FRENCH = (
    "Le café est très apprécié à Paris. Les élèves étudient le français, l'été comme "
    "l'hiver ; où est la bibliothèque ? « Déjà vu », dit-il.\n"
)


def read(source: str, data: bytes, **config) -> FileReading:
    """``read_raw_file``, checking what must hold for every file: its rows add up."""
    reading = read_raw_file(source, data, reader_config(**config))
    assert reading.rows_seen == len(reading.records) + len(reading.quarantined)
    assert reading.rows_seen >= 1
    assert {item.source for item in [*reading.records, *reading.quarantined]} == {source}
    return reading


def outcomes(reading: FileReading) -> list[tuple[int, str]]:
    """Every row as ``(line, "ok" or the rule)``, in line order."""
    rows = [(r.line, "ok") for r in reading.records]
    return sorted(rows + [(q.line, q.rule) for q in reading.quarantined])


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A real PDF with one page per text; an empty text makes a page without text."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    if password is not None:
        pdf.set_encryption(
            owner_password="owner", user_password=password, encryption_method=EncryptionMethod.RC4
        )
    return bytes(pdf.output())


def make_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


# --- Plain text and decoding ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "docs/faq.md", "NOTES.TXT"])
def test_a_text_file_is_one_document(name):
    reading = read(name, b"Returns within 30 days.\nShipping: 3 days.\n")

    assert [(r.line, r.fields) for r in reading.records] == [
        (1, {"text": "Returns within 30 days.\nShipping: 3 days.\n"})
    ]
    assert reading.quarantined == []
    assert reading.encoding == "utf-8"


def test_utf8_byte_order_mark_is_stripped():
    reading = read("bom.txt", codecs.BOM_UTF8 + "Grüße aus München".encode())

    assert reading.records[0].fields["text"] == "Grüße aus München"
    assert reading.encoding == "utf-8-sig"


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_utf16_and_utf32_with_byte_order_mark_are_decoded(bom, encoding):
    text = "Grüße, 東京\nline two\n"
    reading = read("wide.txt", bom + text.encode(encoding))

    assert reading.records[0].fields["text"] == text
    assert reading.encoding == encoding


def test_a_byte_order_mark_that_lies_is_refused_with_its_line():
    data = codecs.BOM_UTF16_LE + "one\ntwo\n".encode("utf-16-le") + b"x"  # half a code unit
    reading = read("wide.txt", data)

    assert outcomes(reading) == [(0, "invalid_encoding")]
    assert "line 3" in reading.quarantined[0].detail
    assert "utf-16-le" in reading.quarantined[0].detail


def test_cp1252_french_is_detected_and_decoded():
    reading = read("legacy/notes.txt", (FRENCH * 3).encode("cp1252"))

    assert reading.records[0].fields["text"] == FRENCH * 3
    assert "é" in reading.records[0].fields["text"]
    assert reading.encoding == "cp1252"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        # charset-normalizer's own best guess for this one is cp1252 ("poszed³em").
        (
            "Wczoraj poszedłem do sklepu, żeby kupić chleb i masło. Pogoda była piękna, więc "
            "spacerowałem długo po parku.\n",
            "cp1250",
        ),
        # charset-normalizer names cp1250 here: the same text, but not where it came from.
        ("Größere Übungen für Schüler: Äpfel, Öl und Straße.\n" * 3, "cp1252"),
        (
            "Die Straße in Zürich ist schön. La gare de Genève est très belle, à côté du lac. "
            "Il caffè è buono e la città è più bella.\n" * 3,
            "cp1252",
        ),
        ("Привет, как дела? Это тестовый текст на русском языке.\n" * 3, "cp1251"),
        ("Καλημέρα κόσμε. Αυτό είναι ένα ελληνικό κείμενο για δοκιμή.\n" * 3, "cp1253"),  # noqa: RUF001
        ("Türkçe çok güzel bir dildir. İstanbul'da yaşıyorum; şehir büyük.\n" * 3, "cp1254"),  # noqa: RUF001
    ],
)
def test_other_legacy_code_pages_decode_to_the_original_text(text, encoding):
    reading = read("legacy.txt", text.encode(encoding))

    assert reading.records[0].fields["text"] == text
    assert reading.encoding == encoding


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            "Café crème à emporter".encode("cp1252"), id="too-short-to-tell-cp1252-cp1250"
        ),
        pytest.param(b"abc \xe9 def\n", id="one-stray-byte"),
        pytest.param(b"the quick bro\xben fox\n" * 3, id="symbol-inside-a-word"),
        pytest.param(
            "Staff: Zoë Ångström, José Müller, Søren Kierkegaard, François Dupont.\n".encode(
                "cp1252"
            ),
            id="too-many-alphabets-at-once",
        ),
        # ASCII with a few corrupted bytes, each caught by one of the plausibility clues.
        pytest.param(b"th\xd1 fox br\xca\xean br\xfawn lazy jumps", id="symbol-next-to-a-letter"),
        pytest.param(b"mor\x97 \xe7azy wor\xdds words lazy t\xf5e", id="capital-in-a-word"),
        pytest.param(b"the the the\xba\x96some make and then", id="two-scripts-in-a-word"),
        pytest.param(b"qu\xbfc\x9a look then r\xa3al real ove\xf1", id="too-implausible"),
        pytest.param(b"then quick quick real to bro\xcan f\x85x", id="too-chaotic"),
    ],
)
def test_text_no_single_encoding_explains_is_refused_not_guessed(data):
    reading = read("unclear.txt", data)

    assert outcomes(reading) == [(0, "invalid_utf8")]
    assert reading.records == []
    assert reading.encoding is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((FRENCH * 2).encode() + b"caf\xe9\n", id="one-latin1-byte"),
        # mac-latin2 would read the quotes as mojibake.
        pytest.param(
            ("He said “hello” and it’s fine – really… " * 3).encode() + b"caf\xe9\n",  # noqa: RUF001
            id="quotes-and-one-latin1-byte",
        ),
    ],
)
def test_damaged_utf8_is_not_read_as_another_encoding(data):
    reading = read("damaged.txt", data)

    assert outcomes(reading) == [(0, "invalid_utf8")]
    assert "the rest of the file is UTF-8" in reading.quarantined[0].detail


def test_invalid_utf8_names_byte_and_line_when_detection_is_off():
    data = b"line one\nline two\ncaf\xe9 au lait\n"
    reading = read("notes.txt", data, allow_detected_encodings=False)

    assert outcomes(reading) == [(0, "invalid_utf8")]
    assert "byte 21 (line 3)" in reading.quarantined[0].detail


def test_detected_encodings_can_be_refused():
    reading = read("notes.txt", (FRENCH * 3).encode("cp1252"), allow_detected_encodings=False)

    assert outcomes(reading) == [(0, "invalid_utf8")]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(64), id="png"),
        pytest.param(random.Random(0).randbytes(4096), id="random"),
        pytest.param(bytes(range(1, 9)) * 50 + b"some text", id="control-bytes-no-nul"),
    ],
)
@pytest.mark.parametrize("name", ["image.txt", "data.jsonl", "table.csv", "page.html"])
def test_binary_data_with_a_text_suffix_is_refused(name, data):
    reading = read(name, data)

    assert outcomes(reading) == [(0, "binary_file")]
    assert reading.encoding is None


def test_decode_text_returns_text_encoding_and_no_problem():
    config = reader_config()

    assert decode_text("a.txt", "héllo".encode(), config) == ("héllo", "utf-8", None)
    text, encoding, problem = decode_text("a.txt", b"", config)
    assert (text, encoding, problem.rule, problem.line) == (None, None, "empty_file", 1)


# --- Whole-file refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b""),
        ("blank.md", b"  \n\t\n"),
        ("bom-only.txt", codecs.BOM_UTF8),
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n\n  \n"),
        ("empty.csv", b""),
        ("header-only.csv", b"id,text\n"),
        ("empty.pdf", b""),
        ("script-only.html", b"<html><script>var x = 1;</script></html>"),
    ],
)
def test_a_file_without_rows_is_reported_as_empty(name, data):
    reading = read(name, data)

    assert outcomes(reading) == [(1, "empty_file")]


@pytest.mark.parametrize("name", ["report.docx", "README", "archive.tar.gz"])
def test_an_unsupported_suffix_is_refused_whole(name):
    reading = read(name, b"anything")

    assert outcomes(reading) == [(0, "unsupported_format")]
    assert ".jsonl" in reading.quarantined[0].detail


def test_a_file_over_max_file_bytes_is_refused_unread():
    reading = read("big.jsonl", b'{"text": "0123456789"}\n', max_file_bytes=10)

    assert outcomes(reading) == [(0, "file_too_large")]


def test_supported_suffixes_are_all_read():
    for suffix in SUPPORTED_SUFFIXES:
        reading = read("x" + suffix, b"\x00")
        assert reading.quarantined[0].rule != "unsupported_format", suffix


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        ReaderConfig.model_validate({"max_line_bytes": 10, "max_lines": 3})


# --- JSON lines ------------------------------------------------------------------------------


def test_json_lines_each_rule_on_its_own_line():
    lines = [
        '{"text": "one"}',
        "",
        '{"text": broken\r',
        "[1, 2]",
        '{"text": "' + "x" * 300 + '"}',
        '"just a string"',
        '{"text": "two"}\r',
        '{"text": "lone \\ud800 surrogate"}',
        '{"text": "emoji \\ud83d\\ude00 is fine"}',
    ]
    reading = read("chats.jsonl", "\n".join(lines).encode(), max_line_bytes=100)

    assert outcomes(reading) == [
        (1, "ok"),
        (3, "malformed_json"),
        (4, "not_an_object"),
        (5, "line_too_long"),
        (6, "not_an_object"),
        (7, "ok"),
        (8, "malformed_json"),
        (9, "ok"),
    ]
    assert reading.rows_seen == 8  # the blank line is not a row
    assert [r.fields for r in reading.records] == [
        {"text": "one"},
        {"text": "two"},
        {"text": "emoji 😀 is fine"},
    ]
    by_line = {q.line: q for q in reading.quarantined}
    assert by_line[3].record == '{"text": broken'
    assert "Expecting value" in by_line[3].detail
    assert by_line[4].detail == "expected a JSON object, got an array"
    assert by_line[5].record == lines[4][:200] + "…"
    assert "over max_line_bytes (100)" in by_line[5].detail


def test_a_malformed_line_is_kept_truncated_in_the_quarantine():
    line = '{"text": "' + "y" * 5000
    reading = read("a.jsonl", line.encode())

    assert outcomes(reading) == [(1, "malformed_json")]
    assert reading.quarantined[0].record == line[:2000]


def test_json_nested_too_deeply_is_malformed_not_a_crash():
    reading = read("deep.jsonl", b"[" * 200_000 + b"\n" + b'{"text": "fine"}\n')

    assert outcomes(reading) == [(1, "malformed_json"), (2, "ok")]


def test_json_lines_split_only_on_newlines():
    reading = read("a.jsonl", '{"text": "one\u2028still one"}\n{"text": "two"}\n'.encode())

    assert [r.fields["text"] for r in reading.records] == ["one\u2028still one", "two"]


def test_json_lines_in_a_detected_encoding():
    data = "\n".join(f'{{"text": "{line}"}}' for line in FRENCH.split(". ")).encode("cp1252")
    reading = read("legacy.jsonl", data)

    assert reading.encoding == "cp1252"
    assert reading.records[0].fields["text"].startswith("Le café est très")


# --- CSV -------------------------------------------------------------------------------------


def test_csv_rows_keep_quoted_commas_newlines_and_quotes():
    data = (
        b'id,text,author\r\n1,"Hello, world",Ann\r\n2,"Line one\r\nline two",Bob\r\n'
        b'3,"He said ""hi""",Cy\r\n\r\n4,,\r\n'
    )
    reading = read("faq.csv", data)

    assert [(r.line, r.fields) for r in reading.records] == [
        (1, {"id": "1", "text": "Hello, world", "author": "Ann"}),
        (2, {"id": "2", "text": "Line one\r\nline two", "author": "Bob"}),
        (3, {"id": "3", "text": 'He said "hi"', "author": "Cy"}),
        (4, {"id": "4", "text": "", "author": ""}),
    ]
    assert reading.quarantined == []


def test_csv_rows_with_the_wrong_number_of_fields_are_refused_alone():
    data = b"id,text\n1,fine\n2,one field too many,x\n3\n4,also fine\n"
    reading = read("faq.csv", data)

    assert outcomes(reading) == [
        (1, "ok"),
        (2, "wrong_field_count"),
        (3, "wrong_field_count"),
        (4, "ok"),
    ]
    too_many = reading.quarantined[0]
    assert too_many.record == ["2", "one field too many", "x"]
    assert too_many.detail == "3 fields where the header has 2 (file line 3)"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'id,text\n1,"quoted"then more\n', id="text-after-closing-quote"),
        pytest.param(b"id,text,id\n1,a,2\n", id="repeated-column"),
    ],
)
def test_a_csv_that_cannot_be_parsed_is_refused_whole(data):
    reading = read("broken.csv", data)

    assert outcomes(reading) == [(0, "unreadable_csv")]


def test_a_csv_row_over_max_line_bytes_is_refused():
    data = b"id,text\n1,short\n2," + b"z" * 500 + b"\n"
    reading = read("big.csv", data, max_line_bytes=100)

    assert outcomes(reading) == [(1, "ok"), (2, "line_too_long")]


# --- Parquet ---------------------------------------------------------------------------------


def test_parquet_rows_are_dicts_of_python_values():
    frame = pd.DataFrame({"text": ["first", "second", "third"], "score": [1, 2, 3]})
    reading = read("rows.parquet", make_parquet(frame))

    assert [(r.line, r.fields) for r in reading.records] == [
        (1, {"text": "first", "score": 1}),
        (2, {"text": "second", "score": 2}),
        (3, {"text": "third", "score": 3}),
    ]
    assert reading.encoding is None


def test_parquet_refusals():
    assert outcomes(read("bad.parquet", b"PAR1 not really parquet PAR1")) == [
        (0, "unreadable_parquet")
    ]
    empty = make_parquet(pd.DataFrame({"text": pd.Series([], dtype=str)}))
    assert outcomes(read("empty.parquet", empty)) == [(1, "empty_file")]
    long_rows = make_parquet(pd.DataFrame({"text": ["ok", "w" * 500]}))
    assert outcomes(read("long.parquet", long_rows, max_line_bytes=100)) == [
        (1, "ok"),
        (2, "line_too_long"),
    ]


# --- PDF -------------------------------------------------------------------------------------


PAGES = ["First page about returns.", "", "Second page about shipping."]


def test_pdf_is_one_document_and_a_page_without_text_is_reported():
    reading = read("manual.pdf", make_pdf(PAGES))

    assert outcomes(reading) == [(1, "ok"), (2, "pdf_page_without_text")]
    assert (
        reading.records[0].fields["text"]
        == "First page about returns.\n\nSecond page about shipping."
    )
    assert "1 of 3 pages" in reading.quarantined[0].detail


def test_pdf_document_per_page():
    reading = read("manual.pdf", make_pdf(PAGES), pdf_document_per="page")

    assert outcomes(reading) == [(1, "ok"), (2, "pdf_page_without_text"), (3, "ok")]
    assert [r.fields["text"] for r in reading.records] == [PAGES[0], PAGES[2]]


def test_pdf_with_no_text_at_all_reports_every_page():
    reading = read("scan.pdf", make_pdf(["", ""]))

    assert outcomes(reading) == [(1, "pdf_page_without_text"), (2, "pdf_page_without_text")]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.4 not really a pdf", id="damaged"),
        pytest.param(make_pdf(["secret"], password="s3cret"), id="password"),
    ],
)
def test_a_pdf_that_cannot_be_opened_is_refused_whole(data):
    reading = read("bad.pdf", data)

    assert outcomes(reading) == [(0, "unreadable_pdf")]
    assert reading.quarantined[0].detail


def test_a_pdf_locked_with_a_password_says_so():
    reading = read("locked.pdf", make_pdf(["secret"], password="s3cret"))

    assert reading.quarantined[0].detail == "encrypted with a password"


def test_a_pdf_encrypted_without_a_user_password_is_read():
    reading = read("locked.pdf", make_pdf(["open to read"], password=""))

    assert [r.fields["text"] for r in reading.records] == ["open to read"]


# --- Import cost -----------------------------------------------------------------------------


def test_importing_the_readers_loads_no_heavy_library():
    heavy = ("pypdf", "bs4", "trafilatura", "lxml", "pyarrow", "pandas", "charset_normalizer")
    script = (
        "import sys, llm_pipeline.hygiene.readers\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
