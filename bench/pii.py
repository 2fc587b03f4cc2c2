"""Recall and precision of ``redact`` per type on a labelled set, and its speed against the
redactor as it was before secrets came from detect-secrets (issue 17), measured in the same run.

The labelled set is drawn fresh from a seed. Ordinary text from Faker: paragraphs, addresses,
product copy, and near misses (UUIDs, hashes, URLs, ISBNs, EANs, SKUs, versions, SSNs from the
never-issued ranges, prose that says "key", "token" or "password"). Into a share of it, one item
a text in a sentence around it: Faker's emails, valid phone numbers, IP addresses, cards, IBANs
and SSNs; secrets in every shape of detect-secrets' plug-ins that the redactor uses (random
characters in the shape its regex describes) and of our own patterns; private key blocks of each
format; JWTs built from Faker's people; credentials in URLs; values named by a key, token,
secret or password word.

An item is found when one redaction of its type covers it whole; a redaction is right when it
overlaps an item of its type. Precision per type counts every redaction of that type, on the
planted texts and on the ordinary ones; the false redactions on ordinary text are listed by type.
Speed: MB/s of ``redact`` and of the redactor at ``--baseline`` (git revision) on the same texts:
the labelled set, and the project's sample data with PII planted as bench/pii_speed.py does.

    .venv/bin/python bench/pii.py [--per-shape 100] [--ordinary-texts 6000] [--seed 7]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import string
import subprocess
import sys
import types
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import phonenumbers
from faker import Faker

sys.path.insert(0, str(Path(__file__).parent))

from pii_speed import cycled, megabytes_per_second, sample_data_texts, with_planted_pii

from llm_pipeline.hygiene import pii
from llm_pipeline.parameters import load_parameters

ROOT = Path(__file__).resolve().parents[1]
CONFIG = pii.PiiConfig.model_validate({**load_parameters()["ingest"]["pii"], "keep": []})
# The commit before this redactor: the redactor the ingest stage ran until then.
BASELINE = "0f37828"

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"

Shape = Callable[[random.Random, Faker], tuple[str, str, str]]  # (before, item, after)


def chars(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def in_prose(item: Callable[[random.Random, Faker], str]) -> Shape:
    """An item written in a sentence of one of a few kinds."""

    def shape(rng: random.Random, fake: Faker) -> tuple[str, str, str]:
        before, after = rng.choice(
            (
                ("I pasted ", " into the chat by mistake, sorry."),
                ("Config value: ", ""),
                ("Please use ", " for the import job."),
                ('"', '"'),
                ("(", ")"),
                ("The log line reads ", ". What does it mean?"),
            )
        )
        return before, item(rng, fake), after

    return shape


def named(names: tuple[str, ...], value: Callable[[random.Random, Faker], str]) -> Shape:
    """A value after a secret-sounding name, as code, config or prose writes it."""

    def shape(rng: random.Random, fake: Faker) -> tuple[str, str, str]:
        name = rng.choice(names)
        before = rng.choice(
            (f"{name}=", f"{name} = ", f'"{name}": "', f"{name}: ", f"export {name.upper()}=")
        )
        return before, value(rng, fake), '"' if before.endswith('"') else ""

    return shape


def in_sentence(words: tuple[str, ...], value: Callable[[random.Random, Faker], str]) -> Shape:
    def shape(rng: random.Random, fake: Faker) -> tuple[str, str, str]:
        word = rng.choice(words)
        before = rng.choice((f"my {word} is ", f"The new {word} ", f"{word.capitalize()}: "))
        return before, value(rng, fake), rng.choice((".", ", keep it safe.", ""))

    return shape


def valid_phone(rng: random.Random, fake: Faker) -> str:
    """A Faker phone number of one of conf/base's regions that libphonenumber calls valid."""
    locales = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR"}
    while True:
        locale = rng.choice(sorted(locales))
        number = fake[locale].phone_number()
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, locales[locale])):
                return number
        except phonenumbers.NumberParseException:
            continue


def nino(rng: random.Random) -> str:
    """A UK National Insurance number of an allocated prefix (Faker's en_GB ones all start ZZ,
    which is never issued)."""
    first, second = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    while (prefix := rng.choice(first) + rng.choice(second)) in (
        "BG",
        "GB",
        "KN",
        "NK",
        "NT",
        "TN",
        "ZZ",
    ):
        pass
    digits = [f"{rng.randrange(100):02d}" for _ in range(3)]
    separator = rng.choice(("", " "))
    return separator.join((prefix, *digits, rng.choice("ABCD")))


def nir(rng: random.Random) -> str:
    """A French NIR with its key, in one run or grouped as INSEE prints it."""
    body = (
        f"{rng.choice('12')}{rng.randrange(100):02d}{rng.randint(1, 12):02d}"
        f"{rng.randint(1, 95):02d}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    )
    key = f"{97 - int(body) % 97:02d}"
    if rng.random() < 0.5:
        return body + key
    return " ".join((body[0], body[1:3], body[3:5], body[5:7], body[7:10], body[10:13], key))


def jwt(rng: random.Random, fake: Faker) -> str:
    def part(data: dict | bytes) -> str:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = {"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
    payload = {"sub": fake.uuid4(), "name": fake.name(), "email": fake.email(), "iat": 1764000000}
    return ".".join((part(header), part(payload), part(rng.randbytes(rng.choice((32, 64, 256))))))


def pem(
    label: str, dashes: str = "-----", space: str = ""
) -> Callable[[random.Random, Faker], str]:
    def block(rng: random.Random, fake: Faker) -> str:
        lines = [chars(rng, B64, 64) for _ in range(rng.randint(3, 20))]
        lines.append(chars(rng, B64, rng.randint(4, 60)) + rng.choice(("", "=", "==")))
        head = f"{dashes}{space}BEGIN {label}{space}{dashes}"
        return "\n".join((head, *lines, head.replace("BEGIN", "END")))

    return block


def putty(rng: random.Random, fake: Faker) -> str:
    return "\n".join(
        (
            "PuTTY-User-Key-File-2: ssh-rsa",
            "Encryption: none",
            f"Comment: {fake.user_name()}@{fake.hostname()}",
            "Public-Lines: 2",
            chars(rng, B64, 64),
            chars(rng, B64, 40),
            "Private-Lines: 3",
            *(chars(rng, B64, 64) for _ in range(3)),
            f"Private-MAC: {chars(rng, HEX, 40)}",
        )
    )


def url_credentials(rng: random.Random, fake: Faker) -> str:
    return f"{fake.user_name()}:{quote(fake.password(length=rng.randint(8, 20)), safe='')}"


def url_around(credentials: Shape) -> Shape:
    def shape(rng: random.Random, fake: Faker) -> tuple[str, str, str]:
        scheme = rng.choice(("postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp",
                             "https", "ftp", "sqlserver"))  # fmt: skip
        _, item, _ = credentials(rng, fake)
        host = f"@{fake.domain_name()}:{rng.randint(1000, 9999)}/{fake.word()}"
        return f"DATABASE_URL={scheme}://", item, host

    return shape


def discord(rng: random.Random, fake: Faker) -> str:
    snowflake = str(rng.randint(10**17, 10**19 - 1)).encode()
    head = base64.b64encode(snowflake).decode().rstrip("=")
    return f"{head}.{chars(rng, B64URL, 6)}.{chars(rng, B64URL, 27)}"


def random_token(rng: random.Random, fake: Faker) -> str:
    """A random key as services print them: hex or base62, with digits and letters."""
    while True:
        value = chars(rng, rng.choice((HEX, ALNUM)), rng.choice((16, 20, 24, 32, 40)))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def password(rng: random.Random, fake: Faker) -> str:
    return fake.password(length=rng.randint(10, 20))


# name: (type, shape). The "secret/..." shapes are detect-secrets plug-ins' (d) or our own (o).
SHAPES: dict[str, tuple[str, Shape]] = {
    "email": ("email", in_prose(lambda rng, fake: fake.email())),
    "phone": ("phone", in_prose(valid_phone)),
    "ipv4": ("ip_address", in_prose(lambda rng, fake: fake.ipv4_public())),
    "ipv6": ("ip_address", in_prose(lambda rng, fake: fake.ipv6())),
    "card_number": ("card_number", in_prose(lambda rng, fake: fake.credit_card_number())),
    "iban": ("iban", in_prose(lambda rng, fake: fake.iban())),
    "national_id/us ssn": ("national_id", in_prose(lambda rng, fake: fake["en_US"].ssn())),
    "national_id/uk nino": ("national_id", in_prose(lambda rng, fake: nino(rng))),
    "national_id/fr nir": ("national_id", in_prose(lambda rng, fake: nir(rng))),
    "secret/stripe (d)": (
        "secret",
        in_prose(
            lambda rng, fake: rng.choice(("sk_live_", "rk_live_"))
            + chars(rng, ALNUM, rng.choice((24, 34, 99)))
        ),
    ),
    "secret/gitlab (d)": (
        "secret",
        in_prose(
            lambda rng, fake: rng.choice(("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"))
            + chars(rng, B64URL, rng.randint(20, 50))
        ),
    ),
    "secret/slack webhook (d)": (
        "secret",
        in_prose(
            lambda rng, fake: "https://hooks.slack.com/services/T"
            + chars(rng, string.ascii_uppercase + string.digits, 8)
            + "/B"
            + chars(rng, string.ascii_uppercase + string.digits, rng.choice((8, 10)))
            + "/"
            + chars(rng, ALNUM, 24)
        ),
    ),
    "secret/slack token (d)": (
        "secret",
        in_prose(
            lambda rng, fake: f"xox{rng.choice('bpsar')}-{rng.randint(10**9, 10**12)}-"
            f"{rng.randint(10**9, 10**12)}-{chars(rng, ALNUM.lower(), 24)}"
        ),
    ),
    "secret/aws key id (d)": (
        "secret",
        in_prose(
            lambda rng, fake: rng.choice(("AKIA", "ASIA"))
            + chars(rng, string.ascii_uppercase + "234567", 16)
        ),
    ),
    "secret/github (d)": (
        "secret",
        in_prose(
            lambda rng, fake: rng.choice(("ghp_", "gho_", "ghs_", "ghu_")) + chars(rng, ALNUM, 36)
        ),
    ),
    "secret/github fine-grained (o)": (
        "secret",
        in_prose(lambda rng, fake: f"github_pat_{chars(rng, ALNUM, 22)}_{chars(rng, ALNUM, 59)}"),
    ),
    "secret/openai (d+o)": (
        "secret",
        in_prose(
            lambda rng, fake: rng.choice(
                (
                    f"sk-{chars(rng, ALNUM, 20)}T3BlbkFJ{chars(rng, ALNUM, 20)}",
                    f"sk-proj-{chars(rng, B64URL, 40)}T3BlbkFJ{chars(rng, B64URL, 40)}",
                )
            )
        ),
    ),
    "secret/google api key (o)": (
        "secret",
        in_prose(lambda rng, fake: "AIza" + chars(rng, B64URL, 35)),
    ),
    "secret/sendgrid (d)": (
        "secret",
        in_prose(lambda rng, fake: f"SG.{chars(rng, B64URL, 22)}.{chars(rng, B64URL, 43)}"),
    ),
    "secret/twilio (d)": (
        "secret",
        in_prose(lambda rng, fake: rng.choice(("AC", "SK")) + chars(rng, HEX, 32)),
    ),
    "secret/mailchimp (d)": (
        "secret",
        in_prose(lambda rng, fake: f"{chars(rng, HEX, 32)}-us{rng.randint(1, 21)}"),
    ),
    "secret/square oauth (d)": (
        "secret",
        in_prose(lambda rng, fake: "sq0csp-" + chars(rng, B64URL, 43)),
    ),
    "secret/pypi (d)": (
        "secret",
        in_prose(
            lambda rng, fake: "pypi-AgEIcHlwaS5vcmc" + chars(rng, B64URL, rng.randint(70, 150))
        ),
    ),
    "secret/npm (d+o)": (
        "secret",
        in_prose(lambda rng, fake: "npm_" + chars(rng, ALNUM, 36)),
    ),
    "secret/telegram (d)": (
        "secret",
        in_prose(lambda rng, fake: f"{rng.randint(10**7, 10**10 - 1)}:{chars(rng, B64URL, 35)}"),
    ),
    "secret/discord (d)": ("secret", in_prose(discord)),
    "secret/azure storage (d)": (
        "secret",
        lambda rng, fake: (
            f"DefaultEndpointsProtocol=https;AccountName={fake.user_name()};AccountKey=",
            base64.b64encode(rng.randbytes(64)).decode(),
            ";EndpointSuffix=core.windows.net",
        ),
    ),
    "secret/artifactory (d)": (
        "secret",
        lambda rng, fake: ("X-JFrog-Art-Api: ", "AKCp" + chars(rng, ALNUM, 69), ""),
    ),
    "secret/named in code": (
        "secret",
        named(
            ("api_key", "client_secret", "access_token", "AUTH_TOKEN", "secret_key", "apiKey"),
            random_token,
        ),
    ),
    "secret/password in code": (
        "secret",
        named(("password", "DB_PASSWORD", "passwd", "pwd", "smtp_password"), password),
    ),
    "secret/named in prose": (
        "secret",
        in_sentence(("api token", "password", "secret key", "access key", "token"), random_token),
    ),
    "secret/connection string": (
        "secret",
        lambda rng, fake: (
            f"Server={fake.hostname()};Database={fake.word()};User Id={fake.user_name()};Password=",
            fake.password(length=rng.randint(8, 20), special_chars=False),
            ";",
        ),
    ),
    "private_key/rsa": ("private_key", in_prose(pem("RSA PRIVATE KEY"))),
    "private_key/ec": ("private_key", in_prose(pem("EC PRIVATE KEY"))),
    "private_key/pkcs8": ("private_key", in_prose(pem("PRIVATE KEY"))),
    "private_key/encrypted": ("private_key", in_prose(pem("ENCRYPTED PRIVATE KEY"))),
    "private_key/openssh": ("private_key", in_prose(pem("OPENSSH PRIVATE KEY"))),
    "private_key/pgp": ("private_key", in_prose(pem("PGP PRIVATE KEY BLOCK"))),
    "private_key/ssh2": ("private_key", in_prose(pem("SSH2 ENCRYPTED PRIVATE KEY", "----", " "))),
    "private_key/putty": ("private_key", in_prose(putty)),
    "jwt": ("jwt", in_prose(jwt)),
    "credentials/url": ("credentials", url_around(in_prose(url_credentials))),
}


def ordinary_text(rng: random.Random, fake: Faker) -> str:
    """A text without personal data or secrets, with the near misses real text has."""
    pieces = []
    for _ in range(rng.randint(1, 5)):
        kind = rng.randrange(9)
        if kind == 0:
            pieces.append(fake.paragraph(nb_sentences=rng.randint(2, 8)))
        elif kind == 1:
            pieces.append(f"Ship to {fake.name()}, {fake.address()}.")
        elif kind == 2:
            pieces.append(
                f"{fake.catch_phrase()}: {fake.bs()}. Only ${rng.randint(5, 900)}.95, "
                f"SKU {fake.bothify('??-#######').upper()}, {rng.randint(1, 12)} in stock."
            )
        elif kind == 3:
            pieces.append(
                f"Build {fake.sha1()} of version {fake.numerify('#.##.###')}, request "
                f"{fake.uuid4()}, checksum {fake.md5()}, at {fake.date()} {fake.time()}."
            )
        elif kind == 4:
            pieces.append(
                f"ISBN {fake.isbn13()}, EAN {fake.ean13()}, see {fake.url()}{fake.uri_path()}."
            )
        elif kind == 5:
            pieces.append(
                f"Reference {fake['en_US'].invalid_ssn()} is not a valid number, nor is "
                f"{fake['en_GB'].ssn()} (the dummy NI number)."
            )
        elif kind == 6:
            pieces.append(
                rng.choice(
                    (
                        "Reset your password from the account page; the link expires in 24 hours.",
                        "The API key is shown once, so keep it somewhere safe.",
                        "Our key features: waterproof zips, taped seams and a lifetime warranty.",
                        "Enter the token from your authenticator app, then press Continue.",
                        "A secret ingredient: 2 tablespoons of maple syrup per 500 g.",
                        "Passwords must have at least 12 characters, one digit and one symbol.",
                    )
                )
            )
        elif kind == 7:
            pieces.append(f"User agent {fake.user_agent()} from {fake.city()}.")
        else:
            pieces.append(
                f"Order {fake.bothify('NW-#####')} for {fake.name()} left {fake.city()} on "
                f"{fake.date_this_year()}; {rng.randint(2, 9)} parcels, {rng.randint(1, 30)} kg."
            )
    return " ".join(pieces)


def labelled_set(
    rng: random.Random, fake: Faker, per_shape: int, ordinary: int
) -> tuple[list[str], list[list[tuple[int, int, str, str]]]]:
    """Texts and, for each, its planted items (start, end, type, shape)."""
    texts: list[str] = []
    labels: list[list[tuple[int, int, str, str]]] = []
    for _ in range(ordinary):
        texts.append(ordinary_text(rng, fake))
        labels.append([])
    for name, (kind, shape) in SHAPES.items():
        for _ in range(per_shape):
            before, item, after = shape(rng, fake)
            host = ordinary_text(rng, fake)
            cut = host.find(". ", rng.randrange(len(host))) + 2 or len(host)
            prefix = host[:cut] + (" " if cut and not host[:cut].endswith(" ") else "") + before
            texts.append(prefix + item + after + " " + host[cut:])
            labels.append([(len(prefix), len(prefix) + len(item), kind, name)])
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]


def score(texts: list[str], labels: list[list[tuple[int, int, str, str]]]) -> None:
    planted: Counter[str] = Counter()
    found: Counter[str] = Counter()
    right: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    false_on_ordinary: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    wrong_examples: dict[str, list[str]] = defaultdict(list)
    ordinary_chars = 0
    for text, items in zip(texts, labels, strict=True):
        spans = pii.redaction_spans(text, CONFIG)
        if not items:
            ordinary_chars += len(text)
        for start, end, kind in spans:
            redactions[kind] += 1
            if any(kind == k and start < e and s < end for s, e, k, _ in items):
                right[kind] += 1
            elif not items:
                false_on_ordinary[kind] += 1
                if len(wrong_examples[kind]) < 3:
                    wrong_examples[kind].append(repr(text[max(0, start - 20) : end + 5]))
        for s, e, kind, shape in items:
            for key in {kind, shape}:
                planted[key] += 1
            if any(k == kind and start <= s and e <= end for start, end, k in spans):
                for key in {kind, shape}:
                    found[key] += 1
            elif len(misses[shape]) < 2:
                misses[shape].append(repr(text[s:e][:70]))
    print(f"{'type / shape':34s} {'planted':>7s} {'recall':>7s} {'precision':>9s}")
    kinds = [kind for kind in pii.PII_TYPES if planted[kind]]
    for kind in kinds:
        precision = right[kind] / redactions[kind] if redactions[kind] else float("nan")
        print(f"{kind:34s} {planted[kind]:7d} {found[kind] / planted[kind]:7.3f} {precision:9.3f}")
        for shape in SHAPES:
            if "/" in shape and shape.split("/")[0] == kind:
                print(f"  {shape:32s} {planted[shape]:7d} {found[shape] / planted[shape]:7.3f}")
    megabytes = ordinary_chars / 1e6
    wrong = ", ".join(f"{k} {n}" for k, n in false_on_ordinary.most_common()) or "none"
    print(f"false redactions on {megabytes:.1f} MB of ordinary text: {wrong}")
    for kind, examples in wrong_examples.items():
        print(f"  false {kind}: {'; '.join(examples)}")
    for shape, examples in misses.items():
        print(f"  missed {shape}: {'; '.join(examples)}")


def bare_numbers(rng: random.Random, count: int) -> None:
    """How often a bare run of random digits (a tracking or claim number with nothing around it
    to tell what it is) is redacted, and as what: such a number can be a phone number (many
    regions dial 10 to 13 digits), a 12-19 digit card or a 15-digit NIR; no rule tells."""
    for length in (12, 15):
        kinds: Counter[str] = Counter()
        for _ in range(count):
            number = "".join(rng.choice("0123456789") for _ in range(length))
            for _, _, kind in pii.redaction_spans(f"Tracking number {number}, thanks.", CONFIG):
                kinds[kind] += 1
        found = ", ".join(f"{k} {n / count:.3f}" for k, n in kinds.most_common()) or "none"
        print(f"bare random {length}-digit numbers ({count}): redacted as {found}")


def redactor_at(revision: str) -> Callable[[str], tuple[str, dict[str, int]]]:
    """``redact`` of hygiene/pii.py as it was at ``revision``, with that version's types."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/llm_pipeline/hygiene/pii.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("pii_at_baseline")
    sys.modules[module.__name__] = module
    exec(compile(source, f"pii.py@{revision}", "exec"), module.__dict__)
    params = {**load_parameters()["ingest"]["pii"], "keep": []}
    params["types"] = [kind for kind in params["types"] if kind in module.PII_TYPES]
    config = module.PiiConfig.model_validate(params)
    return lambda text: module.redact(text, config)


def compare_speed(name: str, texts: list[str], baseline: Callable[[str], object]) -> float:
    """Best-of-3 MB/s of both, timed back to back each round; the median ratio."""
    speeds, baselines, ratios = [], [], []
    for _ in range(3):
        speeds.append(megabytes_per_second(lambda text: pii.redact(text, CONFIG), texts))
        baselines.append(megabytes_per_second(baseline, texts))
        ratios.append(speeds[-1] / baselines[-1])
    ratio = statistics.median(ratios)
    print(
        f"{name}: {sum(map(len, texts)) / 1e6:.1f} MB, redact {max(speeds):.1f} MB/s, "
        f"before {max(baselines):.1f} MB/s, ratio {ratio:.2f} (median of 3)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-shape", type=int, default=100)
    parser.add_argument("--ordinary-texts", type=int, default=6000)
    parser.add_argument("--megabytes", type=float, default=5.0, help="of planted sample data")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the redactor")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    fake.seed_instance(args.seed)
    texts, labels = labelled_set(rng, fake, args.per_shape, args.ordinary_texts)
    print(
        f"labelled set: {len(texts)} texts, {sum(map(len, texts)) / 1e6:.1f} MB, seed {args.seed}"
    )
    score(texts, labels)
    bare_numbers(rng, 1000)
    baseline = redactor_at(args.baseline)
    sample = sample_data_texts(range(args.seed, args.seed + 4))
    planted, _ = with_planted_pii(cycled(sample), args.megabytes, rng)
    compare_speed("labelled set", texts, baseline)
    ratio = compare_speed("sample data with planted PII", planted, baseline)
    print(f"load average {os.getloadavg()[0]:.2f}; redact / before on sample data: {ratio:.2f}")


if __name__ == "__main__":
    main()
