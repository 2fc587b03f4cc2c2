"""Speed of ``redact`` on shop customer-service text with about one PII item per 2 KB.

Two corpora: the project's own sample data (chat turns, email tickets, preference pairs,
knowledge-base pages; short texts, few digits) and a digit-dense stress text (long documents,
a date, price or order number in most sentences). PII items are planted fresh for the timed
run, so phone numbers are mostly unseen and meet phonenumbers as they would in production.
Prints MB/s of ``redact`` (CPU time, one core) and of a baseline measured on the same texts in
the same run: one alternation regex of cheap triggers, searched only. Then planted against
found counts per type, so that speed is not bought with misses. On a shared machine single
rounds vary by a factor of two; trust the best round and the ratio.

    .venv/bin/python bench/pii_speed.py [--megabytes 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from llm_pipeline.cli.sample_data import generate
from llm_pipeline.hygiene.pii import PiiConfig
from llm_pipeline.hygiene.pii import redact as redact_with
from llm_pipeline.parameters import load_parameters

# conf/base's types and regions, keeping none of the shop's own contacts (see with_planted_pii).
CONFIG = PiiConfig.model_validate({**load_parameters()["ingest"]["pii"], "keep": []})


def redact(text: str) -> tuple[str, dict[str, int]]:
    return redact_with(text, CONFIG)


NAIVE_TRIGGER = re.compile(
    r"@|\d(?:[ .()-]{0,2}\d){6}|\d\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:|BEGIN|AKIA|gh[pousr]_"
    r"|github_pat_|sk-|xox|AIza|eyJ|(?i:key|secret|token|password)"
)
NAMES = ("maya", "liam", "sofia", "noah", "aisha", "lucas", "hannah", "kenji", "grace", "omar")
STRESS_SENTENCES = (
    "Standard shipping within the United States costs ${p} and is free on orders over $75.",
    "Your order {o} left our Portland warehouse on {d} and should arrive in 3-5 business days.",
    "The Summit down jacket is ${p} and comes with a 2-year warranty on workmanship.",
    "I ordered {n} pairs of socks on {d} but only 1 arrived. My order number is {o}.",
    "We're open Monday to Friday from 9:00 to 17:30 and Saturdays from 10:00 to 14:00.",
    "Hi, thanks for reaching out! I've issued a refund of ${p} for order {o}.",
    "The jacket weighs 1.2 kg, packs to 25 x 18 cm and is rated to -10 °C.",
    "Ship to 1200 Harbor Blvd, Suite 400, Portland, OR 97209 - delivery took {n} days.",
    "Since {y} we have planted a tree for every order; {n}% of our packaging is recycled.",
    "Could you check order {o}? The tracking page has not changed since {d} at {t}.",
    "Size M fits a 96-101 cm chest; size L fits 102-107 cm. Model is 183 cm tall.",
    "See https://northwind-outfitters.example/returns for the full policy, updated {d}.",
)


def planted_item(rng: random.Random) -> tuple[str, str]:
    """One PII item of a type drawn with realistic weights; the shop's own contacts repeat."""
    kind = rng.choices(
        ("email", "phone", "card_number", "iban", "ip_address", "secret"),
        weights=(35, 30, 8, 7, 10, 10),
    )[0]

    def digits(count: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(count))

    if kind == "email":
        if rng.random() < 0.5:
            return kind, "support@northwind-outfitters.example"
        domain = rng.choice(("gmail.com", "example.org", "web.de"))
        return kind, f"{rng.choice(NAMES)}.{digits(3)}@{domain}"
    if kind == "phone":
        if rng.random() < 0.3:
            return kind, "1-800-555-0199"
        return kind, rng.choice(
            (
                f"+1 415 555 {digits(4)}",
                f"(212) 555-{digits(4)}",
                f"020 7946 {digits(4)}",
                f"+49 30 {rng.randint(100000, 999999)}",
                f"01 23 45 {digits(2)} {digits(2)}",
            )
        )
    if kind == "card_number":
        return kind, rng.choice(("4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005"))
    if kind == "iban":
        return kind, rng.choice(("DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"))
    if kind == "ip_address":
        return kind, f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7"
    token = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    return kind, rng.choice((f"AKIA{token}", f"api_key={token.lower()}xyz"))


def with_planted_pii(
    texts: Iterable[str], megabytes: float, rng: random.Random
) -> tuple[list[str], Counter[str]]:
    """The texts, cycled up to ``megabytes``, with a PII sentence after about every 2 KB."""
    out: list[str] = []
    planted: Counter[str] = Counter()
    size = 0
    budget = rng.random()
    for text in texts:
        # The shop's own contacts in its texts are personal data too, as far as redact knows.
        planted["email"] += text.count("@northwind-outfitters.example")
        planted["phone"] += text.count("1-800-555-0142")
        budget += len(text) / 2000
        while budget >= 1:
            budget -= 1
            kind, item = planted_item(rng)
            planted[kind] += 1
            text += rng.choice((" You can reach me at {}.", " Details: {}.")).format(item)
        out.append(text)
        size += len(text)
        if size >= megabytes * 1e6:
            break
    return out, planted


def sample_data_texts(seeds: range) -> list[str]:
    """Every text of the project's sample data set (default scale) for these seeds: message
    contents, prompts, responses, documents; not ids or roles."""
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in ("id", "role"):
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for seed in seeds:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "01_raw"
            generate(root, scale="default", seed=seed)
            for path in sorted(root.rglob("*")):
                if path.suffix == ".jsonl":
                    for line in path.read_text().splitlines():
                        collect(json.loads(line))
                elif path.is_file():
                    texts.append(path.read_text())
    return texts


def stress_texts(rng: random.Random) -> Iterable[str]:
    """Endless long documents where most sentences hold a date, price or order number."""
    while True:
        yield " ".join(
            rng.choice(STRESS_SENTENCES).format(
                p=f"{rng.randint(5, 499)}.{rng.choice(('00', '49', '95'))}",
                o=f"NW-{rng.randint(10000, 99999)}",
                d=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                t=f"{rng.randint(8, 20)}:{rng.choice(('00', '15', '30', '45'))}",
                y=rng.randint(1998, 2026),
                n=rng.randint(2, 12),
            )
            for _ in range(rng.choice((1, 2, 3, 5, 8, 20, 40)))
        )


def cycled(texts: list[str]) -> Iterable[str]:
    while True:
        yield from texts


def megabytes_per_second(function: Callable[[str], object], texts: list[str]) -> float:
    started = time.process_time()
    for text in texts:
        function(text)
    return sum(map(len, texts)) / (time.process_time() - started) / 1e6


def report(name: str, make_texts: Callable[[], tuple[list[str], Counter[str]]]) -> None:
    """Three rounds, each on freshly planted PII (so phone numbers are unseen) and each timing
    redact and the baseline back to back: the best round of each, the median ratio."""
    speeds, baselines, ratios = [], [], []
    for _ in range(3):
        texts, planted = make_texts()
        speeds.append(megabytes_per_second(redact, texts))
        baselines.append(megabytes_per_second(NAIVE_TRIGGER.search, texts))
        ratios.append(speeds[-1] / baselines[-1])
    found: Counter[str] = Counter()
    for text in texts:
        found.update(redact(text)[1])
    megabytes = sum(map(len, texts)) / 1e6
    average = megabytes * 1e6 / len(texts)
    print(f"{name}: {len(texts)} texts of {average:.0f} chars on average, {megabytes:.1f} MB")
    print(f"  redact                 {max(speeds):7.1f} MB/s (best of 3)")
    print(f"  baseline trigger regex {max(baselines):7.1f} MB/s (best of 3)")
    print(f"  redact / baseline      {statistics.median(ratios):7.2f}   (median of 3)")
    for kind in sorted(found | planted):
        print(f"  {kind:12s} planted {planted[kind]:6d}   found {found[kind]:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sample = sample_data_texts(range(args.seed, args.seed + 4))
    report("sample data", lambda: with_planted_pii(cycled(sample), args.megabytes, rng))
    report(
        "digit-dense stress text", lambda: with_planted_pii(stress_texts(rng), args.megabytes, rng)
    )


if __name__ == "__main__":
    main()
