"""The index's own encoder: MiniLM fine-tuned on the past questions that share a passage."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import ENCODER_AS_SHIPPED, retrieval_config

from llm_pipeline.evaluation.similarity import default_embedding_model, embed
from llm_pipeline.retrieval.config import EncoderTuningConfig
from llm_pipeline.retrieval.encoder import key_groups, tune_encoder
from llm_pipeline.retrieval.index import ENCODER_FOLDER, PACKAGED_MODEL, PassageIndex

pytestmark = pytest.mark.slow

# Questions customers asked, by the passage that answers them: returns, refunds, shipping.
GROUPS = [
    [
        "Can I send back boots I never wore?",
        "How many days do I have to return something?",
        "Is it too late to return a tent I got three weeks ago?",
    ],
    [
        "When will my refund reach my card?",
        "How long until I see the money for my return?",
        "My parcel got back to you, when is the refund paid?",
    ],
    [
        "How much does standard shipping cost?",
        "How long does normal delivery take?",
        "Is delivery free if I spend enough?",
    ],
]
PASSAGES = [
    {"id": f"doc#{n}", "source": "faq.md", "title": "FAQ", "text": text}
    for n, text in enumerate(
        [
            "Returns: unused items can be returned within 30 days of delivery.",
            "Refunds: we refund the original payment method within 5 business days.",
            "Shipping: standard shipping costs $5.95 and is free on orders over $75.",
        ]
    )
]
# Each past question with an answer in its passage's words, so each becomes its key.
QUESTIONS = [
    (question, PASSAGES[number]["text"].split(": ", 1)[1])
    for number, group in enumerate(GROUPS)
    for question in group
]
TUNING = EncoderTuningConfig.model_validate(
    {**ENCODER_AS_SHIPPED, "steps": 8, "batch_size": 3, "learning_rate": 5e-5}
)


def separation(embeddings: np.ndarray, sizes: list[int]) -> float:
    """Mean cosine of two texts of one group minus that of two texts of different groups."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    cosines = embeddings @ embeddings.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(cosines[same & off_diagonal].mean() - cosines[~same].mean())


def test_key_groups_are_the_distinct_keys_of_each_passage_with_two_or_more():
    keys = [
        {"text": "a", "passage": 2},
        {"text": "b", "passage": 0},
        {"text": "c", "passage": 2},
        {"text": "a", "passage": 2},
        {"text": "d", "passage": 1},
        {"text": "e", "passage": 0},
    ]

    assert key_groups(keys) == [["b", "e"], ["a", "c"]]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> tuple[Path, dict]:
    """The packaged MiniLM tuned on GROUPS, and what ``tune_encoder`` says it did."""
    folder = tmp_path_factory.mktemp("encoder") / "tuned"
    return folder, tune_encoder(default_embedding_model(), GROUPS, TUNING, folder)


def test_tuning_pulls_the_questions_of_one_passage_together(tuned):
    folder, done = tuned
    texts = [question for group in GROUPS for question in group]
    sizes = [len(group) for group in GROUPS]

    before = separation(embed(texts), sizes)
    after = separation(embed(texts, folder), sizes)

    assert after > before + 0.05
    assert done["steps"] == 8 and done["groups"] == 3 and done["last_loss"] >= 0
    # A sentence-transformers folder as the packaged one, with the tuned weights only.
    shipped = {path.name for path in default_embedding_model().iterdir()}
    assert shipped <= {path.name for path in folder.iterdir()}


def test_the_same_seed_tunes_the_same_encoder(tuned, tmp_path):
    tune_encoder(default_embedding_model(), GROUPS, TUNING, tmp_path / "again")

    np.testing.assert_allclose(
        embed(GROUPS[0], tmp_path / "again"), embed(GROUPS[0], tuned[0]), atol=1e-5
    )


def cls_pooled_encoder(folder: Path) -> Path:
    """A small sentence-transformers folder that pools by its CLS token, not the mean, with
    MiniLM's tokenizer and no dropout: the tuning must encode as this folder does."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(default_embedding_model()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = Transformer(str(folder / "bert"), max_seq_length=64)
    pooling = Pooling(32, pooling_mode="cls")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


def test_tuning_encodes_with_the_folders_own_pooling(tmp_path):
    """The loss of the first step, before any update, is the loss of the folder's own
    embeddings (CLS-pooled here) of the pairs drawn: mean pooling would give another."""
    import random

    import torch
    from sentence_transformers import SentenceTransformer

    source = cls_pooled_encoder(tmp_path)
    one_step = EncoderTuningConfig.model_validate({**TUNING.model_dump(), "steps": 1})

    done = tune_encoder(source, GROUPS, one_step, tmp_path / "tuned")

    sampler = random.Random(one_step.seed)
    chosen = sampler.sample(GROUPS, min(one_step.batch_size, len(GROUPS)))
    pairs = [sampler.sample(group, 2) for group in chosen]
    shipped = SentenceTransformer(str(source), device="cpu")
    first, second = (
        torch.from_numpy(shipped.encode([p[side] for p in pairs], normalize_embeddings=True))
        for side in (0, 1)
    )
    logits = first @ second.T / one_step.temperature
    rows = torch.arange(len(pairs))
    expected = (
        torch.nn.functional.cross_entropy(logits, rows)
        + torch.nn.functional.cross_entropy(logits.T, rows)
    ) / 2
    assert done["last_loss"] == pytest.approx(expected.item(), abs=2e-4)
    pooling = json.loads((tmp_path / "tuned" / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode"] == "cls"
    assert SentenceTransformer(str(tmp_path / "tuned")).max_seq_length == 64


def test_tuning_needs_the_questions_of_two_passages(tmp_path):
    with pytest.raises(ValueError, match="at least 2 passages, got 1"):
        tune_encoder(default_embedding_model(), GROUPS[:1], TUNING, tmp_path / "tuned")


def test_an_index_carries_its_tuned_encoder_and_searches_with_it_where_it_is_moved(tmp_path):
    config = retrieval_config(top_k=1)
    shipped = PassageIndex.build(PASSAGES, None, config, QUESTIONS)
    tuned = PassageIndex.build(PASSAGES, None, config, QUESTIONS, TUNING)
    queries = ["Could I still return a stove I bought 20 days ago?"]
    dense_before = tuned.scores(queries)[0]
    tuned.save(tmp_path / "index")
    shutil.move(tmp_path / "index", tmp_path / "moved")
    staging = Path(tuned.embedding_model["path"]).parent
    del tuned  # the build's own temporary copy goes with it
    gc.collect()
    assert not staging.exists()

    loaded = PassageIndex.load(tmp_path / "moved")

    settings = json.loads((tmp_path / "moved" / "index.json").read_text())
    model = settings["embedding_model"]
    assert model["folder"] == ENCODER_FOLDER and "path" not in model
    assert model["tuned_from"] == PACKAGED_MODEL
    assert model["tuning"]["steps"] == 8 and model["tuning"]["groups"] == 3
    assert loaded.embedding_model["path"] == str(tmp_path / "moved" / ENCODER_FOLDER)
    assert not np.allclose(loaded.key_embeddings, shipped.key_embeddings, atol=1e-3)
    np.testing.assert_allclose(loaded.scores(queries)[0], dense_before, atol=1e-5)
    assert loaded.search(queries, 1)[0][0]["id"] == "doc#0"


def test_zero_steps_or_too_few_keyed_passages_keep_the_encoder_as_shipped(caplog):
    config = retrieval_config(top_k=1)
    as_shipped = EncoderTuningConfig.model_validate(ENCODER_AS_SHIPPED)

    assert PassageIndex.build(PASSAGES, None, config, QUESTIONS, as_shipped).embedding_model == (
        PACKAGED_MODEL
    )
    one_passage = [pair for pair in QUESTIONS if pair[1] == QUESTIONS[0][1]]
    with caplog.at_level("WARNING", logger="llm_pipeline.retrieval.index"):
        index = PassageIndex.build(PASSAGES, None, config, one_passage, TUNING)
    assert index.embedding_model == PACKAGED_MODEL
    assert "only 1 passages have two or more past questions" in caplog.text
