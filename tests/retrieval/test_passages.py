"""Documents cut into passages: headings prefixed, Q/A pairs kept whole, the budget kept."""

from __future__ import annotations

import pytest

from llm_pipeline.retrieval.passages import split_passages

MARKDOWN = """# Returns and Refunds

We want you to love your gear.

## Details

### Return window

You can return unused items within 30 days of delivery for a full refund.

### Refund timing

Refunds are issued within 5 business days after your return arrives.

## Common questions

**Q:** How long do refunds take?

**A:** We issue your refund within 5 business days of receiving the return.

**Q:** When will I get my money back?

**A:** We issue your refund within 5 business days of receiving the return.

**Q:** Is return shipping free?

**A:** Returns within the US are free with our prepaid label.
"""

TEXT = """TENT CARE
=========

A well cared for tent lasts for many seasons.

KEY POINTS
----------
* Always dry your tent completely before storing it.
* Clean it by hand with lukewarm water and a mild soap.

QUESTIONS AND ANSWERS
---------------------
Q: Can I machine wash my tent?
A: No, clean it by hand with lukewarm water and a mild soap.

Q: How should I store my tent?
A: Dry it completely and store it loosely in a cool, dry place.
"""


def passages_of(text: str, max_words: int = 120, **row) -> list[dict]:
    return split_passages([{"id": "doc-1", "source": "kb/doc.md", "text": text, **row}], max_words)


def test_markdown_passages_carry_their_heading_path():
    texts = [p["text"] for p in passages_of(MARKDOWN)]

    assert "Returns and Refunds: We want you to love your gear." in texts
    assert (
        "Returns and Refunds > Details > Refund timing: Refunds are issued within 5 business "
        "days after your return arrives." in texts
    )
    assert all(p["title"] == "Returns and Refunds" for p in passages_of(MARKDOWN))


def test_questions_sharing_an_answer_form_one_passage_with_their_answer():
    faq = [p["text"] for p in passages_of(MARKDOWN, max_words=30) if "Q: " in p["text"]]

    assert faq == [
        "Returns and Refunds > Common questions: Q: How long do refunds take?\n"
        "Q: When will I get my money back?\n"
        "A: We issue your refund within 5 business days of receiving the return.",
        "Returns and Refunds > Common questions: Q: Is return shipping free?\n"
        "A: Returns within the US are free with our prepaid label.",
    ]


def test_text_documents_use_underlined_headings_and_keep_each_pair_whole():
    texts = [p["text"] for p in passages_of(TEXT, max_words=25)]

    assert texts == [
        "TENT CARE: A well cared for tent lasts for many seasons.",
        "TENT CARE > KEY POINTS: * Always dry your tent completely before storing it.\n"
        "* Clean it by hand with lukewarm water and a mild soap.",
        "TENT CARE > QUESTIONS AND ANSWERS: Q: Can I machine wash my tent?\n"
        "A: No, clean it by hand with lukewarm water and a mild soap.",
        "TENT CARE > QUESTIONS AND ANSWERS: Q: How should I store my tent?\n"
        "A: Dry it completely and store it loosely in a cool, dry place.",
    ]


def test_small_paragraphs_of_a_section_are_merged_up_to_the_budget():
    text = "# Store\n\n" + "\n\n".join(f"Fact number {n} is short." for n in range(1, 7))

    bodies = [p["text"].removeprefix("Store: ") for p in passages_of(text, max_words=10)]

    assert bodies == [
        "Fact number 1 is short.\nFact number 2 is short.",
        "Fact number 3 is short.\nFact number 4 is short.",
        "Fact number 5 is short.\nFact number 6 is short.",
    ]


def test_no_passage_body_exceeds_the_budget_and_no_word_is_lost():
    long_paragraph = " ".join(f"Sentence {n} has exactly six words." for n in range(40))
    text = f"# Policy\n\n{long_paragraph}\n\n" + "\n".join(f"- item {n}" for n in range(30))

    passages = passages_of(text, max_words=25)
    bodies = [p["text"].removeprefix("Policy: ") for p in passages]

    assert max(len(body.split()) for body in bodies) <= 25
    assert " ".join(" ".join(bodies).split()) == " ".join(
        (long_paragraph + " " + " ".join(f"- item {n}" for n in range(30))).split()
    )


def test_a_long_answer_is_cut_with_its_question_heading_every_part():
    answer = " ".join(f"Step {n} is done carefully." for n in range(12))
    passages = passages_of(f"# Care\n\nQ: How do I wash it?\nA: {answer}\n", max_words=20)

    assert len(passages) > 1
    assert all(p["text"].startswith("Care: Q: How do I wash it?\n") for p in passages)


def test_faq_after_prose_takes_the_parent_heading_when_ingest_removed_its_own():
    # "## Common questions" repeated across documents is removed by ingest's boilerplate rule.
    text = (
        "# Returns\n\n### Refund timing\n\nRefunds take 5 business days.\n\n"
        "Q: Is return shipping free?\nA: Yes, within the US.\n"
    )

    texts = [p["text"] for p in passages_of(text)]

    assert texts == [
        "Returns > Refund timing: Refunds take 5 business days.",
        "Returns: Q: Is return shipping free?\nA: Yes, within the US.",
    ]


def test_a_row_title_heads_the_path_of_a_document_without_headings():
    [passage] = passages_of("Standard shipping costs $5.95.", title="Shipping costs")

    assert passage["text"] == "Shipping costs: Standard shipping costs $5.95."
    assert passage["title"] == "Shipping costs"


def test_passages_have_stable_ids_and_an_order_independent_of_the_rows_order():
    rows = [
        {"id": "b", "source": "kb/b.md", "line": 1, "text": "# B\n\nBee.\n\n## More\n\nMore bee."},
        {"id": "a", "source": "kb/a.md", "line": 1, "text": "# A\n\nAy."},
    ]

    forward, backward = split_passages(rows, 50), split_passages(rows[::-1], 50)

    assert forward == backward
    assert [p["id"] for p in forward] == ["a#1", "b#1", "b#2"]
    assert set(forward[0]) == {"id", "source", "title", "text"}
    assert forward[0]["source"] == "kb/a.md"


@pytest.mark.parametrize("row", [{"id": "x", "text": "  "}, {"text": "no id"}])
def test_a_row_without_id_or_text_is_refused_by_name(row):
    with pytest.raises(ValueError, match="needs a non-empty string"):
        split_passages([row], 50)
