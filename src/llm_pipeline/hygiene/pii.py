"""Personal data and secrets replaced by typed placeholders, with counts per type for the report.

Speed comes from anchors that C code finds at memory speed, where one regex tried at every
character would crawl: "@", literal token prefixes, keywords, and runs of eight digits or number
punctuation in a folded copy of the text. A text without anchors comes back untouched; otherwise
only the spots an anchor marks meet precise regexes, checksums and, last, phonenumbers. Secrets
(``hygiene.secrets``) are found the same way, with detect-secrets' plug-ins behind the anchors.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache, lru_cache
from typing import Literal, NamedTuple, get_args

import phonenumbers
from pydantic import BaseModel, ConfigDict, field_validator

from llm_pipeline.hygiene import secrets

PiiType = Literal[
    "email",
    "phone",
    "ip_address",
    "card_number",
    "iban",
    "national_id",
    "secret",
    "private_key",
    "jwt",
    "credentials",
]
PII_TYPES: tuple[PiiType, ...] = get_args(PiiType)
PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ip_address": "<IP_ADDRESS>",
    "card_number": "<CARD_NUMBER>",
    "iban": "<IBAN>",
    "national_id": "<NATIONAL_ID>",
    "secret": "<SECRET>",
    "private_key": "<PRIVATE_KEY>",
    "jwt": "<JWT>",
    "credentials": "<CREDENTIALS>",
}

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Deliberately coarser than the detectors (no checksums): a "nothing obvious left" pattern for
# checks outside the pipeline (grep-style audits). The data contracts do not use it: they run
# find_pii itself, which is faster on large tables and honours PiiConfig.keep.
LEFTOVER_PATTERN: str = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"|\b\d(?:[ -]?\d){12,18}\b"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[opsur]_[A-Za-z0-9]{36}\b"
    r"|\b[rs]k_live_[0-9a-zA-Z]{24}"
    r"|\bglpat-[A-Za-z0-9_-]{20}"
    r"|hooks\.slack\.com/services/T"
    r"|://[^\s:/?#@<>]+:[^\s:/?#@<>]+@"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."
    rf"|(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)"
)


class PiiConfig(BaseModel):
    """Which kinds of personal data are redacted, and the regions that phone numbers written
    without a country code may come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[PiiType, ...]
    phone_regions: tuple[str, ...]
    # Public details of the organisation itself (its support address, its hotline), kept as
    # written; compared ignoring case.
    keep: frozenset[str]

    @field_validator("keep", mode="before")
    @classmethod
    def _casefold(cls, values: object) -> frozenset[str]:
        return frozenset(str(value).casefold() for value in (values or ()))

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"unknown phone regions {unknown}; use ISO 3166 codes such as 'US'")
        return regions


def redact(text: str, config: PiiConfig) -> tuple[str, dict[str, int]]:
    """``text`` with every item found replaced by its placeholder, and the non-zero counts per
    type. A text with nothing to redact is returned as the same object."""
    return apply_redactions(text, redaction_spans(text, config))


def redaction_spans(text: str, config: PiiConfig) -> list[tuple[int, int, str]]:
    """The spans ``redact`` replaces: ``find_pii``'s, less the organisation's own details.

    The slow half of ``redact``: a worker process can find spans and send back only those.
    """
    spans = find_pii(text, config)
    if spans and config.keep:
        spans = [span for span in spans if text[span[0] : span[1]].casefold() not in config.keep]
    return spans


def apply_redactions(text: str, spans: list[tuple[int, int, str]]) -> tuple[str, dict[str, int]]:
    """``text`` with ``spans`` (sorted, non-overlapping) replaced by placeholders, and counts."""
    if not spans:
        return text, {}
    parts: list[str] = []
    counts: dict[str, int] = {}
    position = 0
    for start, end, kind in spans:
        parts += (text[position:start], PLACEHOLDERS[kind])
        counts[kind] = counts.get(kind, 0) + 1
        position = end
    parts.append(text[position:])
    return "".join(parts), counts


def find_pii(text: str, config: PiiConfig) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, type)`` spans of personal data and secrets, sorted."""
    plan = _plan(config.types)
    spans: list[tuple[int, int, str]] = []
    if "@" in text and plan.email:
        spans += _find_emails(text)
    ascii_text = text.encode("ascii", "replace")
    runs, first_run = b"", -1
    if plan.tokens:
        runs = secrets.token_runs(ascii_text)
        first_run = runs.find(secrets.SHORTEST_TOKEN)
    if plan.secrets:
        spans += secrets.find_secrets(text, runs, first_run, config.types)
    if ":" in text and plan.ip_address and ("::" in text or text.count(":") >= 7):
        spans += _find_ipv6(text)  # an IPv6 address has "::" or eight groups
    # Every number type needs ASCII digits.
    digits = plan.numbers and bool(ascii_text.translate(None, _NOT_DIGITS))
    assigned = plan.named and ("=" in text or ":" in text) and secrets.has_assigned_value(text)
    # A value named in prose must look random: long, with digits.
    named = assigned or (plan.named and digits and first_run != -1)
    if digits or named:
        folded = ascii_text.translate(_FOLD).decode("ascii")
        if named:
            spans += secrets.find_named_secrets(text, folded, assigned)
        if digits and _RUN in folded:
            spans += _find_numbers(text, ascii_text, folded, config)
        if digits and plan.national_id and _NINO_RUN in folded:
            spans += _find_ninos(text, folded)
    return _without_overlaps(spans) if len(spans) > 1 else spans


class _Plan(NamedTuple):
    """Which searches a configuration's types call for, worked out once."""

    email: bool
    tokens: bool
    secrets: bool
    ip_address: bool
    numbers: bool
    named: bool
    national_id: bool


@cache
def _plan(types: tuple[str, ...]) -> _Plan:
    return _Plan(
        email="email" in types,
        tokens="secret" in types or "jwt" in types,
        secrets=not secrets.SECRET_TYPES.isdisjoint(types),
        ip_address="ip_address" in types,
        numbers=not _NUMBER_TYPES.isdisjoint(types),
        named="secret" in types,
        national_id="national_id" in types,
    )


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of payment card numbers holds for this string of digits."""
    odd = sum(map(int, digits[-1::-2]))
    even = sum(_LUHN_DOUBLED[int(digit)] for digit in digits[-2::-2])
    return (odd + even) % 10 == 0


def ean13_valid(digits: str) -> bool:
    """The EAN-13 (GTIN) check digit of a product barcode holds: thirteen digits in a row that
    pass it are read as a barcode, not as a card or phone number."""
    weighted = sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(digits[:12]))
    return (10 - weighted % 10) % 10 == int(digits[12])


def iban_valid(iban: str) -> bool:
    """The ISO 13616 mod-97 check holds for this IBAN (upper case, no spaces)."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# Types found in runs of digits (a Telegram bot token starts with one).
_NUMBER_TYPES = frozenset(("ip_address", "card_number", "phone", "iban", "national_id", "secret"))
_RUN = "00000000"
_NOT_DIGITS = bytes(byte for byte in range(256) if not 48 <= byte <= 57)
_PRIORITY = {
    kind: rank
    for rank, kind in enumerate(
        ("private_key", "jwt", "credentials", "secret", "email", "national_id", "iban",
         "card_number", "ip_address", "phone")
    )
}  # fmt: skip
# Applied to the text's ASCII bytes (one byte for one character, so positions carry over).
# Digits and the punctuation inside numbers become 0, letters lower case: a phone number, card,
# IP address or IBAN body is then a run of 0s, which str.find skips to at memory speed. Eight
# (" 1.1.1.1", " 0301234") leaves out most ranges and prices (" 96-101", "$14.95. ").
_FOLD = bytes.maketrans(
    b"0123456789 -./()+ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    b"00000000000000000abcdefghijklmnopqrstuvwxyz",
)
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _without_overlaps(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The earliest span wins, then the longest, then the more specific type."""
    spans.sort(key=lambda span: (span[0], span[0] - span[1], _PRIORITY[span[2]]))
    kept: list[tuple[int, int, str]] = []
    end = 0
    for span in spans:
        if span[0] >= end:
            kept.append(span)
            end = span[1]
    return kept


def _is_word_char(text: str, index: int) -> bool:
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


# --- email -------------------------------------------------------------------------------------

_EMAIL_LOCAL_REVERSED = re.compile(r"[\w.%+-]{1,64}")
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.[^\W\d_]{{2,63}}\b")


def _find_emails(text: str) -> list[tuple[int, int, str]]:
    spans = []
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
        if domain and local:
            local_length = len(local.group().rstrip("."))
            if local_length:
                spans.append((at - local_length, domain.end(), "email"))
        at = text.find("@", at + 1)
    return spans


# --- IP version 6 ------------------------------------------------------------------------------

_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_TOKEN = re.compile(r"[0-9A-Fa-f:.]+")


def _find_ipv6(text: str) -> list[tuple[int, int, str]]:
    spans = []
    done = 0
    for hint in _IPV6_HINT.finditer(text):
        if hint.start() < done:
            continue
        for token in _IPV6_TOKEN.finditer(text, max(0, hint.start() - 40), hint.end() + 40):
            if token.start() <= hint.start() < token.end():
                start, end = token.start(), token.end()
                while end > start and text[end - 1] == ".":
                    end -= 1
                done = end
                if _is_word_char(text, start - 1) or _is_word_char(text, end):
                    break  # part of a word, as in "std::vector"
                try:
                    ipaddress.IPv6Address(text[start:end])
                except ValueError:
                    break
                spans.append((start, end, "ip_address"))
                break
    return spans


# --- numbers: IPv4, IBAN, card, phone ----------------------------------------------------------

_NOT_ZERO = re.compile("[^0]")
_NUMBER_PUNCTUATION = b" -./()+"
_DATE = (
    r"(?:[0-9]{4}(?P<a>[-./])[0-9]{1,2}(?P=a)[0-9]{1,2}"
    r"|[0-9]{1,2}(?P<b>[-./])[0-9]{1,2}(?P=b)[0-9]{2}(?:[0-9]{2})?)"
)
_DATE_ALONE = re.compile(rf"[ ./()+-]*{_DATE}[ ./()+-]*")
_DATE_GROUP = re.compile(_DATE + r"[.,;:)]?")
# Seven digits or more, each pair apart by at most two of " -./()".
_NUMBER = re.compile(r"[+(]{0,2}[0-9](?:[ \-./()]{0,2}[0-9]){6,}")
_IPV4 = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")
_CARD_SEGMENT = re.compile(r"\d+(?:[ -]\d+)*")
_GROUP = re.compile(r"[^ ]+")
# The lengths of a card number's groups: one group, fours (the last may be shorter), or Amex
# and Diners (4 6 5, 4 6 4).
_CARD_GROUPING = re.compile(r"1[2-9]|(?:4 ){2,4}[1-4]|4 6 [45]")
# Maestro's prefixes, the only cards of 12 digits: IIN 50 and 56-69, and 0604 (UK Maestro's in
# older lists, and Faker's).
_MAESTRO = ("50", *map(str, range(56, 70)), "0604")


def _find_numbers(
    text: str, ascii_text: bytes, folded: str, config: PiiConfig
) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    wanted = config.types
    start = folded.find(_RUN)
    while start != -1:
        after = _NOT_ZERO.search(folded, start)
        end = after.start() if after else len(folded)
        # Most runs are dates, ranges or prices: count their digits before any regex.
        digits = len(ascii_text[start:end].translate(None, _NUMBER_PUNCTUATION))
        # A Telegram bot token starts with a run of digits and a colon.
        tokens = (
            "secret" in wanted and folded.startswith(":", end) and _telegram_spans(text, start, end)
        )
        if tokens:
            spans += tokens
        elif digits >= 7 and not (digits == 8 and _DATE_ALONE.fullmatch(text, start, end)):
            # Written 3-2-4 (an SSN, or a number in its never-issued ranges) or as an ISBN-13:
            # not a phone number.
            ssn_shaped = digits >= 9 and _SSN.search(text, start, end)
            if ssn_shaped and "national_id" in wanted:
                spans += _ssn_spans(text, start, end)
            first = start + (text[start] == " ")
            barcode = (
                digits == 13
                and (
                    text.startswith(("978-", "979-"), first)  # an ISBN-13
                    or (
                        text[first : first + 13].isdigit() and ean13_valid(text[first : first + 13])
                    )
                )
            )
            # A NIR's 15 digits, alone or beside other numbers ("at 2026-01-02. (2 74 ...)").
            nirs = digits >= 15 and "national_id" in wanted and _nir_spans(text, start, end)
            if nirs:
                spans += nirs
            if (nirs and digits == 15) or (ssn_shaped and digits == 9) or barcode:
                pass
            elif "card_number" in wanted or "phone" in wanted:
                spans += _card_and_phone_spans(text, start, end, config)
            # An IBAN's digits follow its country code or bank letters.
            if "iban" in wanted and start and "A" <= text[start - 1] <= "Z":
                spans += _iban_spans(text, start, end)
        if digits >= 4 and "ip_address" in wanted and text.count(".", start, end) >= 3:
            spans += _ipv4_spans(text, start, end)
        start = folded.find(_RUN, end)
    return spans


# A US Social Security number as written: 3-2-4 digits apart by dashes or spaces.
_SSN = re.compile(r"(?<![\w-])([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![\w]|-[0-9])")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The Social Security Administration never issues area 000, 666 or 900-999 (ITINs and
    advertising numbers), group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssn_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    return [
        (match.start(), match.end(), "national_id")
        for match in _SSN.finditer(text, start, end)
        if ssn_valid(match[1], match[3], match[4])
    ]


# A French social security number (NIR): sex, year, month, department, commune, order, then a
# key of two digits; written in one run or grouped 1 2 2 2 3 3 2.
_NIR = re.compile(
    r"(?<![\w-])([1278])( ?)([0-9]{2})\2([0-9]{2})\2([0-9]{2})\2([0-9]{3})\2([0-9]{3})\2"
    r"([0-9]{2})(?![\w]|-[0-9])"
)


def nir_valid(digits: str) -> bool:
    """The key of a French NIR (15 digits) holds: 97 less the first 13 digits modulo 97, with a
    month of birth 01-12 (or 20 and over, as INSEE writes an unknown one) and a department."""
    month, department = int(digits[3:5]), digits[5:7]
    return (
        (1 <= month <= 12 or month >= 20)
        and department != "00"
        and int(digits[13:]) == 97 - int(digits[:13]) % 97
    )


def _nir_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    return [
        (match.start(), match.end(), "national_id")
        for match in _NIR.finditer(text, start, end)
        if nir_valid("".join(match.groups()[i] for i in (0, 2, 3, 4, 5, 6, 7)))
    ]


# A UK National Insurance number: two letters (never D, F, I, Q, U, V; the second never O; never
# BG, GB, KN, NK, NT, TN or ZZ), six digits, a suffix A-D; spaced in pairs or not.
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"( ?)[0-9]{2}\1[0-9]{2}\1[0-9]{2}\1[A-D](?![A-Za-z0-9])"
)
# Its six digits fold to a run of six (eight or more when spaced).
_NINO_RUN = "000000"


def _find_ninos(text: str, folded: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    start = folded.find(_NINO_RUN)
    while start != -1:
        # Its letters right before the run (a space after them is in the run).
        if start >= 2 and text[start - 1].isupper():
            match = _NINO.match(text, start - 2)
            if match:
                spans.append((match.start(), match.end(), "national_id"))
        start = folded.find(_NINO_RUN, start + 6)
    return spans


def _telegram_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """A Telegram bot token: this run's last digits, the colon after it, 35 characters."""
    spans = []
    for pattern in secrets.patterns_of(secrets.TELEGRAM):
        match = pattern.search(text, max(start, end - 10), end + 36)
        if match and not _is_word_char(text, match.start() - 1):
            spans.append((match.start(), match.end(), "secret"))
    return spans


def _ipv4_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    spans = []
    for match in _IPV4.finditer(text, start, end):
        if _glued_to_code(text, match.start()) or _is_word_char(text, match.end()):
            continue  # glued to a word, as in "v1.2.3.4" or "Chrome/10.0.1.2"
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        spans.append((match.start(), match.end(), "ip_address"))
    return spans


def _iban_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """IBANs that end in this run of digits; their country code and bank letters lie before."""
    spans = []
    for match in _IBAN.finditer(text, max(0, start - 34), end):
        compact = match.group().replace(" ", "")
        length = _IBAN_LENGTHS.get(compact[:2], len(compact))
        if not 15 <= length <= len(compact) or not iban_valid(compact[:length]):
            continue
        iban_end = match.start()
        # More characters may follow (a reference, a BIC): the country fixes where it ends.
        while length:
            length -= text[iban_end] != " "
            iban_end += 1
        if not _is_word_char(text, iban_end):
            spans.append((match.start(), iban_end, "iban"))
    return spans


def _card_and_phone_spans(
    text: str, start: int, end: int, config: PiiConfig
) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for match in _NUMBER.finditer(text, start, end):
        begin, stop = match.span()
        # A phone number may go on with its extension: "555-201-3344x191", "... ext. 12".
        extension = "phone" in config.types and _EXTENSION.match(text, stop)
        if _glued_to_code(text, begin) or (_is_word_char(text, stop) and not extension):
            continue
        candidate = match.group()
        if _IPV4.fullmatch(candidate):
            continue
        if "card_number" in config.types and not extension:
            cards = _card_spans(candidate, begin)
            if cards:
                spans += cards
                continue
        if "phone" in config.types:
            phones = _phone_spans(text, begin, stop, config.phone_regions)
            if extension and phones and phones[-1][1] >= stop - 1:
                phones[-1] = (phones[-1][0], extension.end(), "phone")
            spans += phones
    return spans


_EXTENSION = re.compile(r" ?(?:x|ext\.?|extn\.?|extension) ?[0-9]{1,6}(?![\w])", re.IGNORECASE)


def _glued_to_code(text: str, start: int) -> bool:
    """The number continues a word or a code: "NW-4821345", "id_20261122", "rv:1.9.2.20"."""
    if _is_word_char(text, start - 1):
        return True
    return start > 1 and text[start - 1] in "-/.#:" and _is_word_char(text, start - 2)


def _card_spans(candidate: str, offset: int) -> list[tuple[int, int, str]]:
    """Luhn-valid numbers grouped as cards are printed: 12-19 digits in one, groups of four,
    or 4-6-5 and 4-6-4; a short group written right after (a CVV) is left out."""
    spans = []
    for segment in _CARD_SEGMENT.finditer(candidate):
        groups = segment.group().replace("-", " ").split(" ")
        for used in (groups, groups[:-1]):
            digits = "".join(used)
            if (
                12 <= len(digits) <= 19
                # 13 digits: only Visa's old numbers (EAN-13 barcodes are the same length);
                # 12: only Maestro's
                and (len(digits) != 13 or digits[0] == "4")
                and (len(digits) != 12 or digits.startswith(_MAESTRO))
                and _CARD_GROUPING.fullmatch(" ".join(map(str, map(len, used))))
                and digits.count(digits[0]) < len(digits)
                and luhn_valid(digits)
            ):
                start = offset + segment.start()
                spans.append((start, start + len(" ".join(used)), "card_number"))
                break
    return spans


def _phone_spans(
    text: str, start: int, end: int, regions: tuple[str, ...]
) -> list[tuple[int, int, str]]:
    groups = [match.span() for match in _GROUP.finditer(text, start, end)]
    # A phone number has at most five groups: long runs (tables of numbers) are read in
    # overlapping slices of eight, so that the work stays linear and no number is cut.
    if len(groups) > 8:
        pieces = [
            (groups[i][0], groups[min(i + 7, len(groups) - 1)][1])
            for i in range(0, len(groups) - 4, 4)
        ]
    else:
        pieces = [(start, end)]
    spans = []
    for piece_start, piece_end in pieces:
        # One character of context for the matcher's "not glued to letters" rule, three after
        # for its "not a timestamp" rule (2026-11-22 10:30).
        window_start = max(0, piece_start - 1)
        window = text[window_start : piece_end + 3]
        for region in _plausible_regions(text[piece_start:piece_end], regions):
            found = _matched_phones(window, region)
            if found:
                spans += [(window_start + a, window_start + b, "phone") for a, b in found]
                break
    return spans


@lru_cache(maxsize=16384)
def _matched_phones(window: str, region: str) -> tuple[tuple[int, int], ...]:
    """Spans of valid phone numbers in ``window``; slow (tens of microseconds), hence the cache."""
    matcher = phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID)
    return tuple((match.start, match.end) for match in matcher)


@lru_cache(maxsize=16384)
def _plausible_regions(candidate: str, regions: tuple[str, ...]) -> tuple[str, ...]:
    """Regions whose numbering plan fits all the candidate's digits, then those fitting a run of
    its groups (never a date): so that order numbers, zip codes and timestamps never reach the
    slow matcher, and the right region is usually the first one tried."""
    if candidate.lstrip("(").startswith("+"):
        return regions[:1]  # a number with its country code means the same in every region
    pieces: list[list[str]] = [[]]
    for group in candidate.split(" "):
        if _DATE_GROUP.fullmatch(group):
            pieces.append([])
        elif digits := _digits(group):
            pieces[-1].append(digits)
    wholes = {"".join(piece) for piece in pieces}
    runs = {
        "".join(piece[i:j])
        for piece in pieces
        for i in range(len(piece))
        for j in range(i + 1, min(i + 5, len(piece)) + 1)
    }
    fitting = [
        [region for region in regions if any(_fits_region(run, region) for run in tried)]
        for tried in (wholes, runs)
    ]
    return tuple(dict.fromkeys(fitting[0] + fitting[1]))


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


_NUMBER_KINDS = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip",
                 "personal_number", "pager", "uan", "voicemail")  # fmt: skip
_NumberPattern = tuple[re.Pattern[str], frozenset[int]]


@cache
def _numbering_plan(region: str) -> tuple[re.Pattern[str], str, tuple[_NumberPattern, ...]]:
    """The region's international prefix, trunk prefix, and patterns with lengths of its numbers,
    compiled once: the tests of ``is_valid_number`` at a fraction of its cost."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    lengths = metadata.general_desc.possible_length
    descs = [getattr(metadata, kind) for kind in _NUMBER_KINDS]
    patterns = tuple(
        (re.compile(desc.national_number_pattern), frozenset(desc.possible_length or lengths))
        for desc in descs
        if desc is not None and desc.national_number_pattern
    )
    international_prefix = re.compile(metadata.international_prefix or "(?!)")
    return international_prefix, metadata.national_prefix or "", patterns


def _fits_region(digits: str, region: str) -> bool:
    if not 7 <= len(digits) <= 17:
        return False
    international_prefix, trunk_prefix, national_numbers = _numbering_plan(region)
    dialled_abroad = international_prefix.match(digits)
    if dialled_abroad and 8 <= len(digits) - dialled_abroad.end() <= 15:
        return True
    if trunk_prefix and digits.startswith(trunk_prefix):
        national = digits[len(trunk_prefix) :]
    elif trunk_prefix == "0":
        return False  # where the trunk prefix is 0 (most of Europe) it is written at home
    else:
        national = digits
    return any(
        len(national) in lengths and pattern.fullmatch(national)
        for pattern, lengths in national_numbers
    )


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
