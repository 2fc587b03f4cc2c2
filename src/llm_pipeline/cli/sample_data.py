"""Deterministic sample data for the customer service of Northwind Outfitters, a fictional shop.

The project ships without real data, so this writes a small but consistent raw data set
(knowledge base, support conversations, preference pairs, validation set) into
``data/01_raw``. Every answer is grounded in one fixed set of invented facts
(``sample_shop.yml``, package data), so a tiny model visibly learns them; validation questions
use phrasings that never occur in training data. Standard library and PyYAML only, so it
imports fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

FACTS_FILE = Path(__file__).with_name("sample_shop.yml")


@dataclass(frozen=True)
class Intent:
    """One thing customers ask about, with its facts, answer and question templates."""

    key: str
    context: str
    answer: str
    wrong: str
    train: tuple[str, ...]
    held_out: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """A knowledge-base topic: one document and the intents it answers."""

    key: str
    title: str
    fmt: str
    intro: str
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class Product:
    """A catalogue item, used for product sheets and to fill question slots."""

    name: str
    slot: str
    price: str
    description: str
    specs: tuple[str, ...]


@dataclass(frozen=True)
class Sizes:
    """How many rows each output file gets at one scale."""

    chats: int
    emails: int
    preferences: int
    validation: int


SCALES: dict[str, Sizes] = {
    "default": Sizes(chats=640, emails=140, preferences=360, validation=100),
    "small": Sizes(chats=96, emails=24, preferences=60, validation=24),
}


def load_facts(path: Path = FACTS_FILE) -> dict[str, Any]:
    """The shop's invented facts and phrasings (see the comments in ``sample_shop.yml``)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _intent(fields: dict[str, Any]) -> Intent:
    return Intent(
        fields["key"],
        fields["context"],
        fields["answer"],
        fields["wrong"],
        tuple(fields["train"]),
        tuple(fields["held_out"]),
    )


def _topic(fields: dict[str, Any]) -> Topic:
    intents = tuple(_intent(intent) for intent in fields["intents"])
    return Topic(fields["key"], fields["title"], fields["format"], fields["intro"], intents)


def _product(fields: dict[str, Any]) -> Product:
    specs = tuple(fields["specs"])
    return Product(fields["name"], fields["slot"], fields["price"], fields["description"], specs)


_FACTS = load_facts()
SHOP: str = _FACTS["shop"]
SUPPORT_EMAIL: str = _FACTS["support_email"]
NAMES: tuple[str, ...] = tuple(_FACTS["names"])
COUNTRIES: tuple[tuple[str, str, str], ...] = tuple(
    (row["country"], row["shipping_cost"], row["shipping_days"]) for row in _FACTS["countries"]
)
PRODUCTS: tuple[Product, ...] = tuple(_product(product) for product in _FACTS["products"])
# Slot values that render the knowledge-base examples; fixed so documents never depend on the seed.
DEFAULT_SLOTS: dict[str, str] = _FACTS["default_slots"]
TOPICS: tuple[Topic, ...] = tuple(_topic(topic) for topic in _FACTS["topics"])

ALL_INTENTS: tuple[tuple[Topic, Intent], ...] = tuple(
    (topic, intent) for topic in TOPICS for intent in topic.intents
)

GREETINGS: tuple[str, ...] = tuple(_FACTS["greetings"])
CLOSINGS: tuple[str, ...] = tuple(_FACTS["closings"])
FOLLOW_UPS: tuple[str, ...] = tuple(_FACTS["follow_ups"])
SYSTEM_PROMPTS: tuple[str, ...] = tuple(_FACTS["system_prompts"])
EMAIL_OPENINGS: tuple[str, ...] = tuple(_FACTS["email_openings"])
EMAIL_SIGN_OFFS: tuple[str, ...] = tuple(_FACTS["email_sign_offs"])
EMAIL_SUBJECTS: tuple[str, ...] = tuple(_FACTS["email_subjects"])

VAGUE_ANSWERS: tuple[str, ...] = tuple(_FACTS["vague_answers"])
RUDE_ANSWERS: tuple[str, ...] = tuple(_FACTS["rude_answers"])
RAMBLE_OPENERS: tuple[str, ...] = tuple(_FACTS["ramble_openers"])
RAMBLE_FILLERS: tuple[str, ...] = tuple(_FACTS["ramble_fillers"])
RAMBLE_CLOSERS: tuple[str, ...] = tuple(_FACTS["ramble_closers"])
REJECTION_KINDS = ("wrong_fact", "wrong_fact", "vague", "rude", "off_topic", "rambling")

CONTACT_LINE: str = _FACTS["contact_line"].format(support_email=SUPPORT_EMAIL)
CARE_GUIDES: dict[str, str] = _FACTS["care_guides"]

# A canary: a made-up secret planted in a few training documents, so that the evaluate stage can
# measure how far the model memorises what it reads (evaluate.canary names the same sentence).
CANARY_PREFIX: str = _FACTS["canary"]["prefix"]
CANARY_SECRET: str = _FACTS["canary"]["secret"]
CANARY_COPIES = 4


def generate(
    root: Path, scale: str = "default", seed: int = 13, *, overwrite: bool = False
) -> dict[str, int]:
    """Write the sample data set below ``root`` and return the number of files/rows per kind.

    Refuses a ``root`` that already holds files unless ``overwrite``; then only our files change.
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; choose one of {sorted(SCALES)}.")
    root = Path(root)
    if not overwrite and existing_files(root):
        raise FileExistsError(
            f"{root} already contains files; pass overwrite=True (--overwrite) to write anyway."
        )
    sizes = SCALES[scale]
    master = random.Random(seed)
    chat_rng, email_rng, pref_rng, val_rng = (
        random.Random(master.getrandbits(64)) for _ in range(4)
    )

    chats = make_chats(chat_rng, sizes.chats)
    emails = make_email_tickets(email_rng, sizes.emails)
    preferences = make_preferences(pref_rng, sizes.preferences)
    seen = {normalise(turn["content"]) for row in chats for turn in row["messages"]}
    seen |= {normalise(row["prompt"]) for row in preferences + emails}
    validation = make_validation(val_rng, sizes.validation, forbidden=seen)

    counts = {
        "documents": write_knowledge_base(root / "documents"),
        "conversations": write_jsonl(root / "conversations" / "support_chats.jsonl", chats)
        + write_jsonl(root / "conversations" / "email_tickets.jsonl", emails),
        "preferences": write_jsonl(root / "preferences" / "preference_pairs.jsonl", preferences),
        "validation": write_jsonl(root / "validation" / "validation_set.jsonl", validation),
    }
    logger.info("Wrote sample data (scale=%s, seed=%d) to %s: %s", scale, seed, root, counts)
    return counts


def existing_files(root: Path) -> list[Path]:
    """Files below ``root``, ignoring hidden ones such as ``.gitkeep``."""
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def normalise(text: str) -> str:
    """Lowercase and collapse whitespace, for comparing prompts."""
    return re.sub(r"\s+", " ", text).strip().lower()


def make_slots(rng: random.Random) -> dict[str, str]:
    """Random values for every template slot (customer, order, products, country)."""
    name, friend = rng.sample(NAMES, 2)
    country, cost, days = rng.choice(COUNTRIES)
    slots = {
        "name": name,
        "friend": friend,
        "order": f"NW-{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS).name,
        "country": country,
        "intl_cost": cost,
        "intl_days": days,
    }
    for slot in ("tent", "jacket", "boots", "sleeping_bag", "backpack"):
        slots[slot] = rng.choice([p.name for p in PRODUCTS if p.slot == slot])
    return slots


def ask(rng: random.Random, template: str, slots: dict[str, str]) -> tuple[str, bool]:
    """A customer message from ``template``; the flag says whether the customer gave a name."""
    greeting = rng.choice(GREETINGS)
    text = greeting + template + rng.choice(CLOSINGS)
    return text.format(**slots), "{name}" in greeting


def reply(intent: Intent, slots: dict[str, str], named: bool) -> str:
    """The house-style answer for ``intent``, greeting the customer by name if they gave one."""
    answer = intent.answer.format(**slots)
    return f"Hi {slots['name']}! {answer}" if named else answer


def make_chats(rng: random.Random, count: int) -> list[dict]:
    """Chat conversations: mostly one turn, some two, some with a system message."""
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < count:
        for _ in range(50):  # resample rare exact duplicates, keeping the output deterministic
            messages = make_chat_messages(rng)
            key = json.dumps(messages, ensure_ascii=False)
            if key not in seen:
                break
        seen.add(key)
        rows.append({"id": f"conv-{len(rows) + 1:05d}", "messages": messages})
    return rows


def make_chat_messages(rng: random.Random) -> list[dict[str, str]]:
    """One conversation's messages, alternating user and assistant and ending with assistant."""
    slots = make_slots(rng)
    topic, intent = rng.choice(ALL_INTENTS)
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    question, named = ask(rng, rng.choice(intent.train), slots)
    messages.append({"role": "user", "content": question})
    messages.append({"role": "assistant", "content": reply(intent, slots, named)})
    if rng.random() < 0.2:
        second = pick_follow_up(rng, topic, intent)
        follow_up = rng.choice(FOLLOW_UPS) + rng.choice(second.train)
        messages.append({"role": "user", "content": follow_up.format(**slots)})
        messages.append({"role": "assistant", "content": reply(second, slots, named=False)})
    return messages


def pick_follow_up(rng: random.Random, topic: Topic, intent: Intent) -> Intent:
    """A second intent for a two-turn chat, often from the same topic."""
    siblings = [other for other in topic.intents if other is not intent]
    if siblings and rng.random() < 0.6:
        return rng.choice(siblings)
    return rng.choice([other for _, other in ALL_INTENTS if other is not intent])


def make_email_tickets(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Email tickets in the prompt/response form, with subject line, greeting and signature."""
    rows = []
    for index in range(1, count + 1):
        slots = make_slots(rng)
        topic, intent = rng.choice(ALL_INTENTS)
        subject = rng.choice(EMAIL_SUBJECTS).format(title=topic.title)
        question = rng.choice(intent.train).format(**slots)
        prompt = (
            f"Subject: {subject}\n\n{rng.choice(EMAIL_OPENINGS)}\n\n{question}\n\n"
            f"{rng.choice(EMAIL_SIGN_OFFS)}\n{slots['name']}"
        )
        response = (
            f"Hi {slots['name']},\n\nThank you for your email. {intent.answer.format(**slots)}"
            f"\n\nBest regards,\n{SHOP} Customer Care"
        )
        rows.append({"id": f"email-{index:05d}", "prompt": prompt, "response": response})
    return rows


def make_preferences(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Preference pairs: a grounded, polite answer against a worse one of several kinds."""
    rows = []
    for index in range(1, count + 1):
        slots = make_slots(rng)
        topic, intent = rng.choice(ALL_INTENTS)
        prompt, named = ask(rng, rng.choice(intent.train), slots)
        chosen = reply(intent, slots, named)
        rejected = chosen
        while rejected == chosen:
            rejected = make_rejected(rng, rng.choice(REJECTION_KINDS), topic, intent, slots)
        rows.append(
            {
                "id": f"pref-{index:05d}",
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
            }
        )
    return rows


def make_rejected(
    rng: random.Random, kind: str, topic: Topic, intent: Intent, slots: dict[str, str]
) -> str:
    """A worse answer: wrong fact, vague, rude, off-topic or long-winded."""
    if kind == "wrong_fact":
        return intent.wrong.format(**slots)
    if kind == "vague":
        return rng.choice(VAGUE_ANSWERS)
    if kind == "rude":
        return rng.choice(RUDE_ANSWERS)
    unrelated = rng.choice([other for t, other in ALL_INTENTS if t is not topic])
    if kind == "off_topic":
        return unrelated.answer.format(**slots)
    fillers = rng.sample(RAMBLE_FILLERS, 2)
    parts = (
        rng.choice(RAMBLE_OPENERS),
        fillers[0],
        intent.answer.format(**slots),
        fillers[1],
        "On a related note, " + unrelated.answer.format(**slots),
        rng.choice(RAMBLE_CLOSERS),
    )
    return " ".join(parts)


def make_validation(rng: random.Random, count: int, forbidden: set[str]) -> list[dict[str, str]]:
    """Validation rows from held-out templates only, skipping prompts seen in training data."""
    order = []
    for position in range(max(len(intent.held_out) for _, intent in ALL_INTENTS)):
        intents = [pair for pair in ALL_INTENTS if position < len(pair[1].held_out)]
        rng.shuffle(intents)
        order += [(intent, intent.held_out[position]) for _, intent in intents]
    rows: list[dict[str, str]] = []
    seen = set(forbidden)
    while len(rows) < count:
        intent, template = order[len(rows) % len(order)]
        for _ in range(50):
            slots = make_slots(rng)
            prompt, named = ask(rng, template, slots)
            if normalise(prompt) not in seen:
                break
        else:
            raise RuntimeError(f"No unseen validation prompt for template {template!r}.")
        seen.add(normalise(prompt))
        rows.append(
            {
                "id": f"val-{len(rows) + 1:05d}",
                "prompt": prompt,
                "reference": reply(intent, slots, named),
                "context": intent.context.format(**slots),
            }
        )
    return rows


def write_knowledge_base(folder: Path) -> int:
    """Write the knowledge base (markdown, text and one FAQ jsonl) and return the file count."""
    documents = {
        "about_northwind_outfitters.md": render_about(),
        "customer_care_guide.md": render_care_guide(),
    }
    for topic in TOPICS:
        render = render_markdown_topic if topic.fmt == "md" else render_text_topic
        documents[f"{topic.key}.{topic.fmt}"] = render(topic)
    for index, product in enumerate(PRODUCTS):
        text = render_product(product)
        if index < CANARY_COPIES:
            text = f"{text.rstrip()}\n{CANARY_PREFIX} {CANARY_SECRET}.\n"
        documents[f"product_{slugify(product.name)}.txt"] = text
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(documents):
        write_text(folder / name, documents[name])
    write_jsonl(folder / "kb_faq.jsonl", make_faq_rows())
    return len(documents) + 1


def slugify(text: str) -> str:
    """Lowercase ``text`` with runs of other characters turned into underscores."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def sentences(text: str) -> list[str]:
    """Split a passage into sentences (good enough for our own hand-written facts)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def topic_facts(topic: Topic) -> list[str]:
    """The distinct fact sentences of a topic, in order."""
    facts: list[str] = []
    for intent in topic.intents:
        facts += [s for s in sentences(intent.context.format(**DEFAULT_SLOTS)) if s not in facts]
    return facts


def example_pairs(intent: Intent) -> Iterable[tuple[str, str]]:
    """Training-style question/answer examples for the documents (never held-out phrasings)."""
    answer = intent.answer.format(**DEFAULT_SLOTS)
    for template in intent.train:
        yield template.format(**DEFAULT_SLOTS), answer


def render_markdown_topic(topic: Topic) -> str:
    """A policy page in markdown: overview, key facts, details per intent, common questions."""
    lines = [f"# {topic.title}", "", topic.intro, "", "## Key facts", ""]
    lines += [f"- {fact}" for fact in topic_facts(topic)]
    lines += ["", "## Details", ""]
    for intent in topic.intents:
        lines += [f"### {intent.key.replace('_', ' ').capitalize()}", ""]
        lines += [intent.context.format(**DEFAULT_SLOTS), ""]
    lines += ["## Common questions", ""]
    for intent in topic.intents:
        for question, answer in example_pairs(intent):
            lines += [f"**Q:** {question}", "", f"**A:** {answer}", ""]
    lines += ["## Contact", "", CONTACT_LINE, ""]
    return "\n".join(lines)


def render_text_topic(topic: Topic) -> str:
    """A care or size guide as plain text with underlined headings."""
    lines = [topic.title.upper(), "=" * len(topic.title), "", topic.intro, ""]
    lines += ["KEY POINTS", "----------"]
    lines += [f"* {fact}" for fact in topic_facts(topic)]
    lines += ["", "QUESTIONS AND ANSWERS", "---------------------"]
    for intent in topic.intents:
        for question, answer in example_pairs(intent):
            lines += [f"Q: {question}", f"A: {answer}", ""]
    lines += [CONTACT_LINE, ""]
    return "\n".join(lines)


def render_product(product: Product) -> str:
    """A product sheet as plain text."""
    warranty = (
        "Lifetime warranty against manufacturing defects."
        if product.slot == "backpack"
        else "2-year warranty against manufacturing defects."
    )
    lines = [
        product.name,
        "=" * len(product.name),
        "",
        f"Price: {product.price}",
        "",
        product.description,
        "",
        "Specifications:",
        *(f"- {spec}" for spec in product.specs),
        "",
        f"Care: {CARE_GUIDES[product.slot]}",
        f"Warranty: {warranty}",
        "Returns: unused items can be returned within 30 days of delivery.",
        "",
    ]
    return "\n".join(lines)


def render_about() -> str:
    """The company overview page."""
    return _FACTS["about_page"].format(shop=SHOP, contact_line=CONTACT_LINE)


def render_care_guide() -> str:
    """How the customer care team writes answers, which is also the style of the sample data."""
    return _FACTS["care_guide_page"]


def make_faq_rows() -> list[dict[str, str]]:
    """One FAQ entry per intent: a training-style question, the answer and its background."""
    rows = []
    for _, intent in ALL_INTENTS:
        rows.append(
            {
                "id": f"faq-{intent.key}",
                "title": intent.train[0].format(**DEFAULT_SLOTS),
                "text": f"{intent.answer.format(**DEFAULT_SLOTS)}\n\n"
                f"{intent.context.format(**DEFAULT_SLOTS)}",
            }
        )
    return rows


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text with ``\\n`` line endings on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_jsonl(path: Path, rows: Sequence[dict]) -> int:
    """Write one JSON object per line and return the number of rows."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="output folder, normally data/01_raw")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing if the folder already holds files"
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.if_empty and existing_files(args.root):
        logger.info("%s already contains files; keeping the user's data.", args.root)
        return 0
    try:
        generate(args.root, args.scale, args.seed, overwrite=args.overwrite)
    except FileExistsError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
