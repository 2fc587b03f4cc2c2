"""PII and secrets: typed placeholders, counts, overlaps, config, the leftover pattern."""

from __future__ import annotations

import base64
import re
import time
from itertools import pairwise

import phonenumbers
import pytest
from pydantic import ValidationError
from support import parameters_of

from llm_pipeline.hygiene import pii
from llm_pipeline.hygiene.pii import (
    LEFTOVER_PATTERN,
    PII_TYPES,
    PLACEHOLDERS,
    PiiConfig,
    find_pii,
    iban_valid,
    luhn_valid,
    redact,
)


def pii_config(**overrides: object) -> PiiConfig:
    """conf/base's ``ingest.pii`` with ``overrides``."""
    return PiiConfig.model_validate(parameters_of("ingest.pii", env="base", **overrides))


# Every type and region of conf/base, without the organisation's own details kept.
PII = pii_config(keep=[])

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)

STRIPE_BODY = "a1B2c3D4e5F6g7H8i9J0k1L2"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/AbCdEfGhIjKlMnOpQrStUvWx"
PGP_BLOCK = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0aBcDEFgHiJkLmNoPqRsTuVwXyZ012345\n=AbCd\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)
SSH2_BLOCK = (
    "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3aWYtbW9kbn\n"
    "---- END SSH2 ENCRYPTED PRIVATE KEY ----"
)
PUTTY_KEY = (
    "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: imported-openssh-key\n"
    "Public-Lines: 1\nAAAAB3NzaC1yc2EAAAADAQABAAABAQC\nPrivate-Lines: 1\n"
    "AAABAEy1nL4dXk9pRr3sT\nPrivate-MAC: 9f3b2a1c0d4e5f60718293a4b5c6d7e8f9012345"
)

# (before, item, after, type): the item alone is replaced.
FOUND = [
    ("Write to ", "jane.doe+shop@example.co.uk", " today.", "email"),
    ("Grüße an ", "jürgen@example.de", ", danke!", "email"),
    ("Call me on ", "+1 415 555 0134", " after 5 pm.", "phone"),
    ("Our London office: ", "(020) 7946 0958", ".", "phone"),
    ("Berlin: ", "+49 30 901820", "", "phone"),
    ("US line ", "415-555-0134", " (mobile)", "phone"),
    ("Paris ", "01 23 45 67 89", " le soir", "phone"),
    ("From abroad dial ", "0049 30 901820", ".", "phone"),
    ("Call ", "1-800-555-0199", ", Monday to Friday.", "phone"),
    ("The server ", "192.168.1.20", " is down.", "ip_address"),
    ("ip=", "10.0.0.1", ",", "ip_address"),
    ("host ", "1.2.3.4", " responded", "ip_address"),
    ("Link-local ", "fe80::1ff:fe23:4567:890a", " again", "ip_address"),
    ("v6 ", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", ".", "ip_address"),
    ("Card: ", "4111 1111 1111 1111", ", exp 12/27", "card_number"),
    ("Müller paid with ", "5555-5555-5555-4444", ".", "card_number"),
    ("Amex ", "378282246310005", "", "card_number"),
    ("IBAN ", "DE89 3704 0044 0532 0130 00", ", thanks", "iban"),
    ("Pay to ", "GB82WEST12345698765432", ".", "iban"),
    ("", "NL91ABNA0417164300", "", "iban"),
    ("key ", "AKIAIOSFODNN7EXAMPLE", " leaked", "secret"),
    ("aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", "secret"),
    ("AWS Secret Access Key: ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", "secret"),
    ("token ", "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8", " in the log", "secret"),
    ("", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "", "secret"),
    ("OPENAI_KEY ", "sk-proj-abcdefghijklmnopqrstuvwxyz123456", "", "secret"),
    ("slack ", "xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "", "secret"),
    ("maps ", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "", "secret"),
    ("Authorization: Bearer ", JWT, "", "jwt"),
    ('{"api_key": "', "abcd1234efgh5678ijkl", '"}', "secret"),
    ("DB_PASSWORD=", "S3cr3t!Passw0rd", "", "secret"),
    ("my password: ", "hunter2hunter2!", "", "secret"),
    ("'password' => '", "correct-horse-battery", "'", "secret"),
    ("Key below\n", PEM, "\nbye", "private_key"),
    (
        "cut off: ",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "",
        "private_key",
    ),
    # Shapes of detect-secrets' plug-ins (issue 17: the first three were missed before)
    ("stripe ", "sk_live_" + STRIPE_BODY, " in the log", "secret"),
    ("restricted ", "rk_live_" + STRIPE_BODY, "", "secret"),
    ("GITLAB_TOKEN ", "glpat-" + "Xy7_k2Lm9Pq4Rs8Tv1Wz", " expires", "secret"),
    ("Alerts go to ", SLACK_WEBHOOK, ".", "secret"),
    ("azure AccountKey=", base64.b64encode(bytes(range(64))).decode(), ";", "secret"),
    ("sendgrid ", "SG." + "a" * 10 + "B" * 12 + "." + "c1D2e" * 8 + "f3G", "", "secret"),
    ("telegram ", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4", " bot", "secret"),
    ("twilio ", "SK" + "0f1e2d3c" * 4, "", "secret"),
    ("mailchimp ", "0123456789abcdef0123456789abcdef-us12", "", "secret"),
    ("square ", "sq0csp-" + "AbCdEfGhIj" * 4 + "123", "", "secret"),
    ("pypi ", "pypi-AgEIcHlwaS5vcmc" + "Ab1-" * 20, "", "secret"),
    ("npm ", "npm_" + "a1B2c3D4e5F6" * 3, "", "secret"),
    # Credentials inside URLs and connection strings
    ("DATABASE_URL=postgres://", "app_user:Zx81qwPLm", "@db.internal:5432/shop", "credentials"),
    ("mongodb+srv://", "root:hunter2", "@cluster0.example.net/?retryWrites", "credentials"),
    ("Server=db;User Id=sa;Password=", "N0t-So-S3cret!", ";", "secret"),
    ("DB_PASSWORD=", "Ab3$xy9!", "", "secret"),
    ("url?user=me&password=", "k9&Lm2pQ", "&next=home", "secret"),
    ("(", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4", ")", "secret"),
    # Private key blocks of other formats
    ("", PGP_BLOCK, "", "private_key"),
    ("", SSH2_BLOCK, "", "private_key"),
    (
        "",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n"
        "-----END ENCRYPTED PRIVATE KEY-----",
        "",
        "private_key",
    ),
    ("", PUTTY_KEY, "\n", "private_key"),
    # High-entropy values after key, token, secret or password, in prose
    ("the API token is ", "9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c", ", please rotate", "secret"),
    ("my new password ", "Tr0ub4dor3xK9zQ2wp", " works", "secret"),
    ("Secret key: ", "q8Z3vN1xR5tY7uW2", "", "secret"),
    # US Social Security numbers
    ("SSN ", "123-45-6789", " on file", "national_id"),
    ("Social security number: ", "078 05 1120", ".", "national_id"),
    ("", "536-90-4399", "", "national_id"),
    ("Shipped 2026-11-22. (", "686-45-1913", ")", "national_id"),
    # UK National Insurance numbers, spaced or not; French NIRs in one run or grouped
    ("NI ", "AB 12 34 56 C", "", "national_id"),
    ("NINO: ", "JG103759A", ".", "national_id"),
    ("NIR ", "2 84 07 75 123 456 07", " on file", "national_id"),
    ("Shipped 2026-11-22. (", "284077512345607", ")", "national_id"),
    # Phone numbers with their extension; Maestro's 12-digit cards
    ("Call ", "(213) 201-3344x191", " today", "phone"),
    ("Call ", "213-201-3344 ext. 12", ".", "phone"),
    ("Phone: ", "020 7946 0958 extension 204", ",", "phone"),
    ("Maestro ", "5018 0080 6363", " expires", "card_number"),
    ("Maestro ", "676363170660", ".", "card_number"),
    ("Card: ", "060408377830", ".", "card_number"),
]

ORDINARY = [
    "Your order NW-48213 left our Portland warehouse on 2026-11-22 at 9:00.",
    "The Summit down jacket is $1,299.00; standard shipping costs $5.95.",
    "Orders over $75 ship free and arrive in 3-5 business days.",
    "Please quote order 12345 when you call.",
    "Size M fits a 96-101 cm chest; size L fits 102-107 cm.",
    "Ship to 1200 Harbor Blvd, Suite 400, Portland, OR 97209 - thanks! Zip+4 is 97209-1234.",
    "We shipped on 2026-04-12 10:30 and again on 22.11.2026 and 12/25/2026.",
    "Version 1.2.3 of the app weighs 10.5 kg, oddly; 1.2.3.4.5 is a version too.",
    "Since 1998 we have planted 25,000 trees; 30% of our packaging is recycled.",
    "Open Monday to Friday 9:00-17:30 (10:30:00 on Saturdays).",
    "I need to reset my password because the login page says: it is wrong.",
    "Our key features: waterproof zips, taped seams and a lifetime repair service.",
    "A risk-free-cancellation-policy-for-everyone applies; ask the desk-staff.",
    "In C++ you write std::vector<int> and that's it.",
    "This card 4111 1111 1111 1112 fails the Luhn check.",
    "This IBAN GB82WEST12345698765433 fails its checksum.",
    "Not an address: 256.1.1.1 or v1.2.3.4.",
    "Mail us at support at northwind dot example, or @northwind on social media.",
]


# A near miss of each new shape: not redacted at all.
NEAR_MISSES = [
    "A Stripe test page mentions sk_live_ABC123 (too short to be a key).",
    "glpat_hellOworld380_testin uses an underscore; glpat-short123 is too short.",
    "Slack help lives at https://hooks.slack.com/help and https://hooks.slack.com/services/.",
    "Docs at http://localhost:8080/docs@v2 and https://example.com:443/a:b@ are not logins.",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIB\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n-----END CERTIFICATE-----",
    "The line BEGIN RSA PRIVATE KEY in the docs names a header, without its dashes.",
    "eyJub3QganNvbiBhdCBhbGw.eyJhbHNvIG5vdCBqc29u.c2ln is base64 of text, not JSON.",
    "The token is valid for 30 days; a password reset2024 link was sent.",
    "Your API key rotation is scheduled for 2026-11-30 at 10:30 UTC.",
    "The api key is abcdefghijklmnopqrstuvwxyz, all letters: no digits, no token.",
    "Secret sauce: version 1.22.333.4444 of the recipe, SKU AP-1234567 and ACME-2026.",
    "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000.",
    "Not SSNs either: 123-45-67890, 1234-56-789 and 2026-11-22.",
    "At 12345678:30 the counter read 12345678:AAHdqTcvCH1vGWJxfSe (too short).",
    "Mozilla/5.0 (Windows NT 6.0; rv:1.9.2.20) Gecko/20110803 Firefox/3.6.20",
    "Password: forgotten? Passwords: required. ISBN 978-1-02-084589-5.",
    "Barcodes (EAN-13) 4789718945938 and 0577316143993 are neither cards nor phone numbers.",
    "Not NINOs: QQ 12 34 56 C, AB123456E, ZZ123456A, GB123456A, AO123456B.",
    "Not NIRs: 284077512345608 (its key is wrong), 584077512345698 (no such sex digit).",
    "Resolution 1920x1080 and 3840x2160; part 4002 3344 1221x12 is a code.",
    "A 12-digit number that is no Maestro card: 601800806363.",
]


def case_text(before: str, item: str, after: str) -> str:
    return before + item + after


@pytest.mark.parametrize(("before", "item", "after", "kind"), FOUND)
def test_each_type_is_replaced_by_its_placeholder(
    before: str, item: str, after: str, kind: str
) -> None:
    text = case_text(before, item, after)
    assert redact(text, PII) == (before + PLACEHOLDERS[kind] + after, {kind: 1})
    start = len(before)
    assert find_pii(text, PII) == [(start, start + len(item), kind)]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_shop_text_is_left_alone(text: str) -> None:
    assert redact(text, PII) == (text, {})


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_of_each_shape_are_left_alone(text: str) -> None:
    assert find_pii(text, PII) == []


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("123-45-6789", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("900-12-3456", False),
        ("999-12-3456", False),
        ("123-00-4567", False),
        ("123-45-0000", False),
        ("899-99-9999", True),
    ],
)
def test_ssn_never_issued_ranges(ssn: str, valid: bool) -> None:
    assert pii.ssn_valid(*ssn.split("-")) is valid
    assert (find_pii(f"SSN {ssn}.", PII) == [(4, 15, "national_id")]) is valid


@pytest.mark.parametrize(
    ("nir", "valid"),
    [
        ("284077512345607", True),
        ("284077512345608", False),  # the key
        ("284137512345606", False),  # month 13
        ("284070012345692", False),  # department 00
    ],
)
def test_nir_key_month_and_department(nir: str, valid: bool) -> None:
    assert pii.nir_valid(nir) is valid


def test_ordinary_shop_text_never_reaches_the_slow_phone_matcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counting_matcher(text: str, region: str, **kwargs: object) -> list[object]:
        calls.append(text)
        return []

    pii._matched_phones.cache_clear()
    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", counting_matcher)
    for text in ORDINARY:
        redact(text, PII)
    assert calls == []
    redact("Call me on (212) 555-0507.", PII)
    assert len(calls) == 1
    pii._matched_phones.cache_clear()


def test_several_items_in_one_text_are_all_replaced_and_counted() -> None:
    text = (
        "Hi, I'm Maya (maya.1987@gmail.com, +1 415 555 0134). Please refund card "
        "4111-1111-1111-1111 for order NW-48213 of 2026-11-22, or write to "
        "support@northwind-outfitters.example. My IP was 203.0.113.7."
    )
    assert redact(text, PII) == (
        "Hi, I'm Maya (<EMAIL>, <PHONE>). Please refund card <CARD_NUMBER> for order "
        "NW-48213 of 2026-11-22, or write to <EMAIL>. My IP was <IP_ADDRESS>.",
        {"email": 2, "phone": 1, "card_number": 1, "ip_address": 1},
    )


def test_a_secret_assignment_and_numbers_in_one_text_share_the_folded_copy() -> None:
    # The folded copy is made for the assignment and reused for the numbers after it.
    text = "API_KEY: abcdefgh12345678 and call +1 415 555 0134 from 10.0.0.7"
    assert redact(text, PII) == (
        "API_KEY: <SECRET> and call <PHONE> from <IP_ADDRESS>",
        {"secret": 1, "phone": 1, "ip_address": 1},
    )


@pytest.mark.parametrize(
    "text", ["a line of ---------- dashes (...) and //// slashes", "+++++ ((((( ))))) ..........."]
)
def test_number_punctuation_without_digits_is_never_a_number(text: str) -> None:
    assert find_pii(text, PII) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a JWT that is also the value of a token assignment: the more specific type
        (f"token={JWT}", "token=<JWT>"),
        # a password in a URL: the user:password, not an email "password@host"
        ("postgres://u:pw@db.example.com", "postgres://<CREDENTIALS>@db.example.com"),
        # an SSN is not also a phone number
        ("call 212-55-0134", "call <NATIONAL_ID>"),
        # "secret" and "key" both name this assignment
        ("secret_key = abcdefgh12345678", "secret_key = <SECRET>"),
        # digits of a phone number inside an email address
        ("mail 4155550134@example.com now", "mail <EMAIL> now"),
        # an IPv4 address whose twelve digits also look like a long number
        ("at 192.168.100.200 today", "at <IP_ADDRESS> today"),
        # an IBAN whose digits also form a long number
        ("DE89 3704 0044 0532 0130 00", "<IBAN>"),
        # a phone number next to a date, in one run of digits and spaces
        ("2026-11-22 415-555-0134", "2026-11-22 <PHONE>"),
    ],
)
def test_overlapping_candidates_are_replaced_once(text: str, expected: str) -> None:
    redacted, counts = redact(text, PII)
    assert redacted == expected
    assert sum(counts.values()) == 1


def test_spans_are_sorted_and_never_overlap() -> None:
    text = " | ".join(case_text(*case[:3]) for case in FOUND)
    spans = find_pii(text, PII)
    assert len(spans) == len(FOUND)
    assert [kind for _, _, kind in spans] == [case[3] for case in FOUND]
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in pairwise(spans))


@pytest.mark.parametrize("text", [case_text(*case[:3]) for case in FOUND] + ORDINARY)
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once, _ = redact(text, PII)
    assert redact(once, PII) == (once, {})


def test_a_text_without_anything_to_redact_is_returned_as_is() -> None:
    text = "Thanks so much, the boots fit perfectly!"
    redacted, counts = redact(text, PII)
    assert redacted is text
    assert counts == {}
    assert find_pii("", PII) == []


def test_config_types_restricts_what_is_redacted() -> None:
    text = "Mail jane@example.com or call +1 415 555 0134 from 10.0.0.1."
    assert redact(text, pii_config(types=("email",))) == (
        "Mail <EMAIL> or call +1 415 555 0134 from 10.0.0.1.",
        {"email": 1},
    )
    assert redact(text, pii_config(types=("phone", "ip_address"))) == (
        "Mail jane@example.com or call <PHONE> from <IP_ADDRESS>.",
        {"phone": 1, "ip_address": 1},
    )
    assert redact(text, pii_config(types=())) == (text, {})


def test_phone_regions_decide_numbers_without_a_country_code() -> None:
    text = "Ring (020) 7946 0958 or +44 20 7946 0958."
    assert redact(text, pii_config(phone_regions=("US",))) == (
        "Ring (020) 7946 0958 or <PHONE>.",
        {"phone": 1},
    )
    assert redact(text, pii_config(phone_regions=("GB",)))[1] == {"phone": 2}


@pytest.mark.parametrize(
    "fields",
    [{"types": ("email", "ssn")}, {"phone_regions": ("US", "XX")}, {"colour": "red"}],
)
def test_config_refuses_unknown_types_regions_and_fields(fields: dict) -> None:
    with pytest.raises(ValidationError):
        pii_config(**fields)


@pytest.mark.parametrize(
    "text",
    [
        "api_key" * 30_000,
        "1 " * 50_000,
        "4" * 200_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" * 3_000,
        "a@" * 50_000,
        "a:" * 50_000,
        "1." * 50_000,
        "password= " * 20_000,
        "415-555-0134 " * 5_000,
        "glpat-" * 30_000,
        "eyJ" * 60_000,
        "://a:b" * 30_000 + "@",
        "MTNTODOT" * 25_000,
        "12345678:" * 20_000,
        "the token is " * 15_000,
        "---- BEGIN RSA PRIVATE KEY ----\n" * 3_000,
        "AccountKey=" * 20_000,
        "//a/:_authToken=" * 20_000,
        "token=" * 30_000,
    ],
)
def test_adversarial_texts_take_linear_time(text: str) -> None:
    started = time.process_time()
    redact(text, PII)
    assert time.process_time() - started < 5  # about 0.1 s; quadratic work takes minutes


def test_placeholders_cover_every_type() -> None:
    assert set(PLACEHOLDERS) == set(PII_TYPES)
    assert len(set(PLACEHOLDERS.values())) == len(PII_TYPES)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("79927398713", True),
        ("79927398710", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("DE89370400440532013001", False),
        ("GB82WEST12345698765432", True),
        ("GB28WEST12345698765432", False),
        ("FR1420041010050500013M02606", True),
    ],
)
def test_iban_mod_97(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


LEFTOVER = re.compile(LEFTOVER_PATTERN)


@pytest.mark.parametrize(
    "raw",
    [
        "write to jane.doe@example.com",
        "card 4111 1111 1111 1111",
        "card 4111-1111-1111-1111",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "key AKIAIOSFODNN7EXAMPLE",
        "server 192.168.1.20.",
    ],
)
def test_leftover_pattern_matches_raw_pii(raw: str) -> None:
    assert LEFTOVER.search(raw)


@pytest.mark.parametrize(
    "text",
    [redact(case_text(*case[:3]), PII)[0] for case in FOUND]
    + [" ".join(PLACEHOLDERS.values())]
    + [text for text in ORDINARY if "Luhn" not in text],
)
def test_leftover_pattern_passes_redacted_and_ordinary_text(text: str) -> None:
    assert LEFTOVER.search(text) is None


def test_public_details_listed_in_keep_stay_as_written():
    config = pii_config(keep=["Support@Shop.example", "1-800-555-0142"])
    text = "Mail support@shop.example or jane@home.example, or call 1-800-555-0142."
    redacted, counts = redact(text, config)
    assert redacted == "Mail support@shop.example or <EMAIL>, or call 1-800-555-0142."
    assert counts == {"email": 1}
