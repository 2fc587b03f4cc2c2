"""The index stage over an in-memory catalog, and grounding whole tables of chats with it."""

from __future__ import annotations

import tempfile

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from support import ANSWER_CLASSIFIER, ENCODER_AS_SHIPPED, RETRIEVAL_OFF

from llm_pipeline.pipelines.index import create_pipeline
from llm_pipeline.retrieval import PassageIndex
from llm_pipeline.retrieval.conversations import ground_conversations, grounding

pytestmark = pytest.mark.slow

DOCUMENTS = pd.DataFrame(
    {
        "id": ["returns", "shipping", "stoves"],
        "source": ["returns.md", "shipping.md", "stoves.md"],
        "text": [
            "# Returns\n\nUnused items can be sent back within 30 days of delivery for a refund.",
            "# Shipping\n\nStandard shipping costs $5.95 and takes 3-5 business days.",
            "# Camp stoves\n\nThe Ember stove burns isobutane canisters and weighs 310 g.",
        ],
    }
)
CONVERSATIONS = pd.DataFrame(
    {
        "messages": [
            [
                {"role": "user", "content": "Can I bring back a coat I never wore?"},
                {"role": "assistant", "content": "Yes: unused items within 30 days of delivery."},
            ],
            [
                {"role": "user", "content": "What fuel does the little burner take?"},
                {"role": "assistant", "content": "The Ember stove burns isobutane canisters."},
            ],
        ]
    }
)
RETRIEVAL = {**RETRIEVAL_OFF, "enabled": True, "top_k": 1, "template": "Passages:\n{passages}"}


@pytest.fixture(scope="module")
def index_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    tempfile.tempdir, before = str(root), tempfile.tempdir
    try:
        catalog = DataCatalog(
            datasets={
                "validated_documents_train": MemoryDataset(DOCUMENTS.iloc[:2]),
                "validated_documents_validation": MemoryDataset(DOCUMENTS.iloc[2:]),
                "validated_conversations_train": MemoryDataset(CONVERSATIONS),
                "params:retrieval": MemoryDataset(RETRIEVAL),
                # Two keys of two passages: nothing to tune on, the encoder stays as shipped.
                "params:retrieval_encoder": MemoryDataset({**ENCODER_AS_SHIPPED, "steps": 2}),
                "params:answer_classifier": MemoryDataset(ANSWER_CLASSIFIER),
            }
        )
        outputs = SequentialRunner().run(create_pipeline(), catalog)
    finally:
        tempfile.tempdir = before
    return outputs["passage_index"].load().path


def test_every_document_is_indexed_with_the_past_questions_as_keys(index_folder):
    index = PassageIndex.load(index_folder)

    assert {p["source"] for p in index.passages} == {"returns.md", "shipping.md", "stoves.md"}
    assert [key["text"] for key in index.keys] == [
        "Can I bring back a coat I never wore?",
        "What fuel does the little burner take?",
    ]
    returns = next(i for i, p in enumerate(index.passages) if p["source"] == "returns.md")
    assert index.keys[0]["passage"] == returns


def test_each_user_turn_gets_its_passages_in_one_system_turn(index_folder):
    index = PassageIndex.load(index_folder)
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How much is standard shipping?"},
        {"role": "assistant", "content": "$5.95."},
        {"role": "user", "content": "And can I return unused things?"},
    ]

    [grounded] = ground_conversations([chat], index, 1, "Passages:\n{passages}")

    assert [turn["role"] for turn in grounded] == ["system", "user", "assistant", "user"]
    system = grounded[0]["content"]
    assert system.startswith("Be brief.\n\nPassages:\n[1] ")
    assert "$5.95" in system and "30 days" in system and "isobutane" not in system
    assert grounded[1:] == chat[1:]


def test_with_retrieval_off_the_chats_come_back_unchanged(index_folder):
    chats = [list(messages) for messages in CONVERSATIONS["messages"]]

    assert grounding(index_folder, RETRIEVAL_OFF)(chats) == chats
    assert grounding(index_folder, RETRIEVAL)(chats) != chats
