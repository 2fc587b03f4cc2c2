"""Versions registered as LoRA adapters over a base registered once (``register.weights:
adapters``), against a real MLflow store: what the registry holds, and that the version loads,
serves and is evaluated as the very model the register stage had."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from support import build_tiny_model, counted_loads, isolated_mlflow, saved_weights
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_pipeline.datasets import (
    MlflowRegistryDataset,
    ModelFolder,
    RegistryCandidate,
    RegistryModelFolderDataset,
)
from llm_pipeline.serving.adapters import DIGEST_TAG, WEIGHTS_TAG, weights_digest
from llm_pipeline.training.models import KEPT_ADAPTER, adapter_chain, merge_adapter_folder

NAME = "shop-assistant"


def train_lora_stage(start: Path, output: Path, seed: int) -> Path:
    """What a LoRA stage hands on: an adapter with trained (non-zero) B matrices, saved with
    the tokenizer and folded into ``start`` by ``merge_adapter_folder``."""
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32),
        LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(start).save_pretrained(output)
    merge_adapter_folder(output, start.resolve())
    return output


@pytest.fixture(scope="module")
def lora_models(tmp_path_factory):
    """A base, an SFT model made from it by LoRA and an aligned model made from that by LoRA:
    the chain the register stage finds when every stage after the starting model is LoRA."""
    root = tmp_path_factory.mktemp("lora_models")
    base = build_tiny_model(root / "base")
    sft = train_lora_stage(base, root / "sft", seed=1)
    aligned = train_lora_stage(sft, root / "aligned", seed=2)
    return SimpleNamespace(base=base, sft=sft, aligned=aligned)


@pytest.fixture(scope="module")
def registered(tmp_path_factory, lora_models):
    """v1: the aligned model as adapters (the base registered with it); v2: the SFT model as
    adapters over the same base; v3: the base's own folder, asked as adapters (it has none)."""
    import mlflow

    root = tmp_path_factory.mktemp("adapter_registry")
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(root, mp):
        registry = MlflowRegistryDataset(NAME)
        loads = counted_loads(mp)
        for folder, aliases in (
            (lora_models.aligned, ("champion",)),
            (lora_models.sft, ("challenger",)),
            (lora_models.base, ()),
        ):
            with mlflow.start_run():
                registry.save(
                    RegistryCandidate(
                        model=ModelFolder(folder), aliases=aliases, weights="adapters"
                    )
                )
        # Registering hashes the base's files; it loads no weights into this process.
        assert loads == []
        yield SimpleNamespace(root=root, client=mlflow.MlflowClient())


def test_a_lora_stage_keeps_its_adapter_naming_the_folder_it_trained_on(lora_models):
    base, adapters = adapter_chain(lora_models.aligned)

    assert base == lora_models.base.resolve()
    assert adapters == [lora_models.sft / KEPT_ADAPTER, lora_models.aligned / KEPT_ADAPTER]
    assert adapter_chain(lora_models.base) == (lora_models.base, [])


def test_the_base_is_registered_once_and_every_adapter_version_pins_it(registered, lora_models):
    client = registered.client

    bases = client.search_model_versions(f"name = '{NAME}-base'")
    versions = {int(v.version): v for v in client.search_model_versions(f"name = '{NAME}'")}

    assert len(bases) == 1
    digest, _ = weights_digest(lora_models.base)
    assert bases[0].tags[DIGEST_TAG] == digest
    for number in (1, 2):
        assert versions[number].tags["base.model"] == f"models:/{NAME}-base/1"
        assert versions[number].tags[f"base.{DIGEST_TAG}"] == digest
    assert versions[1].tags[WEIGHTS_TAG] == "2 adapter(s) over the base"
    assert versions[2].tags[WEIGHTS_TAG] == "1 adapter(s) over the base"
    assert versions[3].tags[WEIGHTS_TAG].startswith("full: no LoRA adapter or soft prompt was kept")


def test_an_adapter_version_holds_adapters_not_weights(registered):
    import mlflow

    adapter_files = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    full_files = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/3"))

    weights = sorted(p.relative_to(adapter_files) for p in adapter_files.rglob("*.safetensors"))
    assert [str(p) for p in weights] == [
        "artifacts/aligned/adapters/00/adapter_model.safetensors",
        "artifacts/aligned/adapters/01/adapter_model.safetensors",
    ]
    assert (adapter_files / "artifacts/aligned/tokenizer_config.json").is_file()
    assert (full_files / "artifacts/base/model.safetensors").is_file()
    requirements = (adapter_files / "requirements.txt").read_text()
    assert "peft==" in requirements


def test_an_adapter_version_serves_the_model_the_register_stage_had(registered, lora_models):
    import mlflow

    chat = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    served = chat.get_raw_model().model.state_dict()
    expected = saved_weights(lora_models.aligned)

    assert set(expected) <= set(served)
    assert all(torch.allclose(served[name], expected[name], atol=1e-6) for name in expected)
    answer = chat.predict(
        {"messages": [{"role": "user", "content": "tent"}], "max_tokens": 3, "temperature": 0}
    )
    assert answer["usage"]["completion_tokens"] <= 3


def test_an_adapter_champion_is_evaluated_as_a_plain_model_folder(registered, lora_models):
    folder = RegistryModelFolderDataset(NAME, "champion", str(registered.root / "champion")).load()

    folded = saved_weights(folder.path)
    expected = saved_weights(lora_models.aligned)
    assert not (folder.path / "adapters").exists()
    assert (folder.path / "tokenizer_config.json").is_file()
    assert sorted(folded) == sorted(expected)
    assert all(torch.allclose(folded[name], expected[name], atol=1e-6) for name in expected)


def test_an_adapter_version_refuses_a_base_that_is_not_the_pinned_one(registered):
    import mlflow

    registered.client.set_model_version_tag(f"{NAME}-base", "1", DIGEST_TAG, "0" * 64)
    try:
        with pytest.raises(ValueError, match="is not the base these adapters were trained on"):
            mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    finally:
        digest = registered.client.get_model_version(NAME, "2").tags[f"base.{DIGEST_TAG}"]
        registered.client.set_model_version_tag(f"{NAME}-base", "1", DIGEST_TAG, digest)


def test_adapters_whose_base_folder_is_gone_are_registered_with_the_weights(tmp_path, lora_models):
    import mlflow

    moved = tmp_path / "sft"
    shutil.copytree(lora_models.sft, moved)
    (moved / KEPT_ADAPTER / "adapter_config.json").write_text(
        '{"base_model_name_or_path": "' + str(tmp_path / "gone") + '", "peft_type": "LORA"}'
    )
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(tmp_path, mp):
        candidate = RegistryCandidate(model=ModelFolder(moved), aliases=(), weights="adapters")
        with mlflow.start_run():
            MlflowRegistryDataset(NAME).save(candidate)

        client = mlflow.MlflowClient()
        version = client.get_model_version(NAME, "1")
        assert "no longer there" in version.tags[WEIGHTS_TAG]
        assert version.tags[WEIGHTS_TAG].startswith("full: ")
        assert client.search_model_versions(f"name = '{NAME}-base'") == []
        files = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
        assert (files / "artifacts/sft/model.safetensors").is_file()


@pytest.fixture(scope="module")
def soft_prompt_version(tmp_path_factory):
    """A soft prompt (prompt tuning) registered as an adapter over its base."""
    import mlflow
    from peft import PromptTuningConfig

    root = tmp_path_factory.mktemp("soft_prompt")
    base = build_tiny_model(root / "base")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    )
    with torch.no_grad():  # a soft prompt away from its random start
        model.prompt_encoder["default"].embedding.weight.normal_(0, 0.5)
    prompt = root / "prompt"
    model.save_pretrained(prompt)
    AutoTokenizer.from_pretrained(base).save_pretrained(prompt)
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(root, mp):
        loads = counted_loads(mp)
        with mlflow.start_run():
            MlflowRegistryDataset(NAME).save(
                RegistryCandidate(
                    model=ModelFolder(prompt), aliases=("champion",), weights="adapters"
                )
            )
        # Before, a soft prompt was merged into a plain model in this process to register it.
        assert loads == []
        yield SimpleNamespace(root=root, prompt=prompt, client=mlflow.MlflowClient())


MESSAGES = [{"role": "user", "content": "How long does standard shipping take?"}]


def prompt_ids(folder: Path) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids


def test_a_soft_prompt_is_registered_as_an_adapter_and_serves_as_trained(soft_prompt_version):
    import mlflow

    from llm_pipeline.training.models import load_causal_lm

    version = soft_prompt_version.client.get_model_version(NAME, "1")
    files = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    chat = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    ids = prompt_ids(soft_prompt_version.prompt)
    with torch.no_grad():
        served = chat.get_raw_model().model(input_ids=ids).logits
        trained = load_causal_lm(soft_prompt_version.prompt).eval()(input_ids=ids).logits

    assert version.tags[WEIGHTS_TAG] == "1 adapter(s) over the base"
    assert sorted(str(p.relative_to(files)) for p in files.rglob("*.safetensors")) == [
        "artifacts/prompt/adapters/00/adapter_model.safetensors"
    ]
    assert (files / "artifacts/prompt/config.json").is_file()
    torch.testing.assert_close(served, trained)


def test_a_soft_prompt_champion_is_evaluated_as_a_plain_model_folder(soft_prompt_version):
    from llm_pipeline.training.models import is_adapter_folder, load_causal_lm

    root = soft_prompt_version.root
    folder = RegistryModelFolderDataset(NAME, "champion", str(root / "champion")).load().path
    ids, merged_ids = prompt_ids(soft_prompt_version.prompt), prompt_ids(folder)
    with torch.no_grad():
        expected = load_causal_lm(soft_prompt_version.prompt).eval()(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(folder).eval()(input_ids=merged_ids).logits

    assert not is_adapter_folder(folder) and (folder / "model.safetensors").is_file()
    # The soft prompt became four special tokens that the chat template writes first.
    assert merged_ids.shape[1] == ids.shape[1] + 4
    vocabulary = expected.shape[-1]
    torch.testing.assert_close(got[:, 4:, :vocabulary], expected[:, -ids.shape[1] :])


def test_a_base_whose_files_are_not_the_registered_sizes_is_refused(registered, lora_models):
    from llm_pipeline.serving.adapters import downloaded_base

    digest, sizes = weights_digest(lora_models.base)
    reference = {
        "registered_model": f"{NAME}-base",
        "version": 1,
        "sha256": digest,
        "sizes": {**sizes, "model.safetensors": 1},
    }
    with (
        pytest.raises(ValueError, match="weight files are not the ones registered"),
        downloaded_base(reference),
    ):
        pass
    with downloaded_base({**reference, "sizes": sizes}) as folder:
        assert (folder / "model.safetensors").stat().st_size == sizes["model.safetensors"]


def test_a_folder_without_weights_has_no_digest(tmp_path):
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(ValueError, match="holds no model weights"):
        weights_digest(tmp_path)


def test_registering_again_over_untouched_base_files_reads_none_of_their_bytes(tmp_path):
    """The base's digest is computed once per set of files: a later registration over the same
    files, not written since (the fingerprint tag of the base version), reads none of their
    bytes and names the same base version; a file written again (the same bytes, a new time)
    is read again, and still finds that version by its digest."""
    import mlflow

    from llm_pipeline.serving.adapters import FILES_TAG, weights_fingerprint
    from llm_pipeline.training import manifests

    base = build_tiny_model(tmp_path / "base")
    sft = train_lora_stage(base, tmp_path / "sft", seed=1)
    aligned = train_lora_stage(sft, tmp_path / "aligned", seed=2)
    hashed: list[Path] = []
    full_sha256 = manifests.file_sha256

    def counted_sha256(path: Path) -> str:
        hashed.append(Path(path))
        return full_sha256(path)

    def register(folder: Path) -> str:
        hashed.clear()
        with mlflow.start_run():
            MlflowRegistryDataset(NAME).save(
                RegistryCandidate(model=ModelFolder(folder), aliases=(), weights="adapters")
            )
        versions = client.search_model_versions(f"name = '{NAME}'")
        return max(versions, key=lambda found: int(found.version)).tags["base.model"]

    (tmp_path / "store").mkdir()
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow(tmp_path / "store", mp):
        mp.setattr(manifests, "file_sha256", counted_sha256)
        client = mlflow.MlflowClient()

        assert register(sft) == f"models:/{NAME}-base/1"
        assert {path.name for path in hashed} == {"config.json", "model.safetensors"}
        (base_version,) = client.search_model_versions(f"name = '{NAME}-base'")
        assert base_version.tags[FILES_TAG] == weights_fingerprint(base)

        assert register(aligned) == f"models:/{NAME}-base/1"
        assert hashed == []

        weights = base / "model.safetensors"
        weights.write_bytes(weights.read_bytes())  # the same bytes, written again
        assert register(aligned) == f"models:/{NAME}-base/1"
        assert {path.name for path in hashed} == {"config.json", "model.safetensors"}
        assert len(client.search_model_versions(f"name = '{NAME}-base'")) == 1
        tags = client.get_model_version(f"{NAME}-base", "1").tags
        assert tags[FILES_TAG] == weights_fingerprint(base)
