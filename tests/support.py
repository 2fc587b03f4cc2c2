"""Test helpers: throw-away copies of the project, and Kedro and DVC commands run in them."""

from __future__ import annotations

import atexit
import copy
import functools
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF = PROJECT_ROOT / "conf"


@functools.cache
def _merged_parameters(env: str) -> dict[str, Any]:
    from llm_pipeline.parameters import load_parameters

    return load_parameters(env, CONF)


def environment_parameters(env: str = "tiny") -> dict[str, Any]:
    """The merged parameters of ``env`` (conf/base and conf/<env>), as ``kedro run --env`` sees
    them; a fresh copy that a test may change."""
    return copy.deepcopy(_merged_parameters(env))


def launch_config(**overrides: Any) -> Any:
    """conf/tiny's ``launch`` (one process, fp32) with ``overrides``; without a checkpoint root
    unless one is given, so that a test's job checkpoints in a temporary folder."""
    from llm_pipeline.training.launch import LaunchConfig

    return LaunchConfig.model_validate(
        parameters_of("launch", **{"checkpoint_root": None, "staging_root": None, **overrides})
    )


def tokenizer_config(**overrides: Any) -> Any:
    """conf/tiny's ``pretrain.tokenizer`` with ``overrides``."""
    from llm_pipeline.training.tokenizer import TokenizerConfig

    return TokenizerConfig.model_validate(parameters_of("pretrain.tokenizer", **overrides))


def judge_config(**overrides: Any) -> Any:
    """conf/tiny's ``evaluate.judge`` (no judge) with ``overrides``."""
    from llm_pipeline.pipelines.evaluate.judge import JudgeConfig

    return JudgeConfig.model_validate(parameters_of("evaluate.judge", **overrides))


def canary_config(**overrides: Any) -> Any:
    """conf/tiny's ``evaluate.canary`` with ``overrides``."""
    from llm_pipeline.pipelines.evaluate.canary import CanaryConfig

    return CanaryConfig.model_validate(parameters_of("evaluate.canary", **overrides))


def small_evaluate_params(**overrides: Any) -> dict[str, Any]:
    """conf/tiny's ``evaluate`` for a few tiny models: short answers, two samples, no prompt
    variants; ``overrides`` over its top-level keys."""
    scaled = {
        "max_new_tokens": 8,
        "batch_size": 4,
        "include_context": False,
        "samples_in_report": 2,
        "seed": 0,
        "prompt_variants": {},
    }
    return parameters_of("evaluate", **{**scaled, **overrides})


def parameters_of(section: str, env: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The parameters under ``section`` (a dotted path such as ``ingest.cleaning``) of ``env``,
    with ``overrides`` over its top-level keys: tests build configs from the real YAML instead
    of repeating its values."""
    found: Any = environment_parameters(env)
    for key in section.split("."):
        found = found[key]
    return {**found, **overrides}


def tool(name: str) -> str:
    """A command of this virtual environment (kedro, dvc), found beside the running python."""
    return str(Path(sys.executable).parent / name)


def command_environment(**extra: str) -> dict[str, str]:
    """The environment for Kedro and DVC subprocesses: no telemetry, a git identity."""
    env = dict(os.environ)
    env.pop("KEDRO_ENV", None)
    # A project's runs use its own configuration, never a store another test pointed MLflow at
    # (MLflow exports the URIs it is given to the environment for subprocesses).
    for variable in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
    ):
        env.pop(variable, None)
    # dvc.yaml says `kedro run`: the environment's own commands come first, as when activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        DO_NOT_TRACK="1",
        GIT_AUTHOR_NAME="llm-pipeline tests",
        GIT_AUTHOR_EMAIL="tests@llm-pipeline.invalid",
        GIT_COMMITTER_NAME="llm-pipeline tests",
        GIT_COMMITTER_EMAIL="tests@llm-pipeline.invalid",
        **extra,
    )
    return env


def run_command(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=command_environment(**extra_env), capture_output=True, text=True
    )


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for a rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_of_finished_run(finished_tiny_run: tuple[Path, str], target: Path) -> Path:
    """A copy at ``target`` of the shared tiny run's finished project (``finished_tiny_run``),
    for a test that changes it."""
    finished, _ = finished_tiny_run
    shutil.copytree(finished, target)
    return target


def copy_project(target: Path, raw_data: Path, mlflow_store: bool = True) -> Path:
    """A copy of the project's code and configuration with ``raw_data`` as data/01_raw, and an
    empty MLflow store (``new_mlflow_store``) unless ``mlflow_store`` is false: then the first
    `kedro run` makes it, as on a user's new checkout."""
    names = ["pyproject.toml", "conf", "src", "dvc.yaml", ".telemetry", ".gitignore"]
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "local")
    for name in names:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    (target / "conf" / "local").mkdir(exist_ok=True)
    shutil.copytree(raw_data, target / "data" / "01_raw")
    if mlflow_store:
        new_mlflow_store(target)
    return target


@functools.cache
def _empty_mlflow_store() -> Path:
    """An MLflow SQLite store with nothing in it, made once per test process."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="llm-pipeline-mlflow-store-"))
    atexit.register(shutil.rmtree, folder, True)
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def new_mlflow_store(folder: Path) -> Path:
    """``folder/mlflow.db`` as MLflow makes a new store there when a run in ``folder`` first
    opens it (conf/base's ``sqlite:///mlflow.db``), if there is none: its tables and the Default
    experiment, whose artifacts go to ``folder/mlruns/0``. Copied from a store made once per
    test process: MLflow makes a store's tables by running every schema migration, 1.2 to 3.8 s
    on 2 cores, which each project copy and each test's own store paid before."""
    target = folder / "mlflow.db"
    if not target.exists():
        shutil.copyfile(_empty_mlflow_store(), target)
        with closing(sqlite3.connect(target)) as store, store:
            store.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (str(folder.resolve() / "mlruns" / "0"),),
            )
    return target


# The retrieval section with grounding off: prompts stay as they are, no index is read.
RETRIEVAL_OFF = {
    "enabled": False,
    "top_k": 3,
    "max_words": 80,
    "lexical_weight": 0.3,
    "template": "Passages:\n{passages}",
    "past_answers": 0,
    "past_answers_template": "Answers:\n{answers}",
    "own_answer_in_training": False,
}


# ``retrieval_encoder`` with MiniLM as shipped (steps 0); the other values as conf/base has them.
ENCODER_AS_SHIPPED = {
    "steps": 0,
    "batch_size": 32,
    "learning_rate": 2.0e-5,
    "temperature": 0.05,
    "max_length": 64,
    "seed": 0,
}

# ``answer_classifier`` as conf/base has it.
ANSWER_CLASSIFIER = {"weight": 2.0, "regularisation": 100.0, "folds": 5, "seed": 0}


def retrieval_config(**overrides: Any) -> Any:
    """A RetrievalConfig with retrieval on, over RETRIEVAL_OFF's values; ``overrides`` on top."""
    from llm_pipeline.retrieval.config import RetrievalConfig

    return RetrievalConfig.model_validate({**RETRIEVAL_OFF, "enabled": True, **overrides})


ITEMS = ("hiking boots", "tent", "rain jacket", "backpack", "camping stove", "head lamp")
FACTS = ("ships in", "costs", "arrives within", "can be returned within", "is on sale for")
AMOUNTS = ("3 days", "5 days", "two weeks", "20 euros", "45 euros")


def shop_sentences() -> list[str]:
    facts = [f"The {i} {f} {a}." for i, f, a in itertools.product(ITEMS, FACTS, AMOUNTS)]
    questions = [f"Can I return my {i} after {a}?" for i, a in itertools.product(ITEMS, AMOUNTS)]
    return [*facts, *questions, "Thank you for shopping with us!", "Hello, how can I help?"]


def tiny_llama_config(tokenizer: Any, **overrides: Any) -> Any:
    """The tests' one-layer Llama config for ``tokenizer``; ``overrides`` are other LlamaConfig
    fields (layers, heads, ``num_labels``)."""
    from transformers import LlamaConfig

    sizes = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
    return LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **{**sizes, **overrides},
    )


def build_tiny_model(folder: Path, seed: int = 0, **overrides: int) -> Path:
    """A one-layer Llama and its byte-level BPE tokenizer, saved as a Hugging Face folder;
    ``overrides`` are other LlamaConfig sizes (layers, heads)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from llm_pipeline.training.tokenizer import train_tokenizer

    train_tokenizer(shop_sentences(), tokenizer_config(vocab_size=300, min_frequency=1), folder)
    tok = AutoTokenizer.from_pretrained(folder)
    config = tiny_llama_config(tok, **overrides)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def saved_weights(folder: Path) -> dict:
    """A saved model folder's tensors by name."""
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def training_losses(folder: Path) -> list[float]:
    """The training losses a saved model folder's ``training_log.json`` holds, in order."""
    history = json.loads((folder / "training_log.json").read_text())
    return [entry["loss"] for entry in history if "loss" in entry]


# The trainer fields of a job that ``assert_resumes_after_losing_its_last_checkpoint`` resumes:
# a checkpoint at steps 2 and 4, both kept.
CHECKPOINT_EVERY_2_STEPS = {"save_strategy": "steps", "save_steps": 2, "save_total_limit": 2}


def assert_resumes_after_losing_its_last_checkpoint(
    module: str,
    spec: dict[str, Any],
    jobs: Path,
    caplog: Any,
    finished: dict[str, Any] | None = None,
) -> None:
    """Runs the training job ``module`` with ``spec`` (saving at steps 2 and 4), then removes
    step 4's checkpoint and the output as if the run had been killed before it completed: the
    re-run must resume at step 2 and end with the weights of the uninterrupted run.

    ``finished``: the spec of the same job, already run whole into other folders (another
    test's run): its checkpoints and weights are copied and read, not made again."""
    import logging
    import re

    from llm_pipeline.training.launch import launch

    checkpoints = spec["checkpoint_dir"]
    if finished is None:
        launch(module, spec, launch_config(), jobs)
        uninterrupted = saved_weights(spec["output_dir"])
    else:
        shutil.copytree(finished["checkpoint_dir"], checkpoints)
        uninterrupted = saved_weights(finished["output_dir"])
    found = sorted(path.name for path in checkpoints.glob("checkpoint-*"))
    assert found == ["checkpoint-2", "checkpoint-4"]
    shutil.rmtree(checkpoints / "checkpoint-4")
    shutil.rmtree(spec["output_dir"], ignore_errors=True)

    with caplog.at_level(logging.INFO):
        launch(module, spec, launch_config(), jobs)

    resumed_at = re.search(r"Resuming from \S+checkpoint-(\d+) \(step (\d+)\)", caplog.text)
    assert resumed_at and resumed_at[1] == "2", "the re-run did not resume at step 2"
    resumed = saved_weights(spec["output_dir"])
    assert uninterrupted.keys() == resumed.keys()
    different = [name for name in uninterrupted if not uninterrupted[name].equal(resumed[name])]
    assert not different, f"weights differ after resuming at step 2: {different}"


@contextmanager
def isolated_mlflow(root: Path, mp: Any):
    """Point tracking and registry at ``root/mlflow.db`` and artifacts at ``root``; undo after."""
    import mlflow

    # MLflow keeps the URIs it was given in module globals; remember them to restore exactly.
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri, registry_utils._registry_uri
    # The experiment an earlier test made active lives in another store: start from none, so
    # that runs go to this store's default experiment.
    previous_experiment = fluent._active_experiment_id
    fluent._active_experiment_id = None
    mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    uri = f"sqlite:///{new_mlflow_store(root)}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_REGISTRY_URI", uri)
    mp.chdir(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        fluent._active_experiment_id = previous_experiment


# Four passages of the shop's documents, for retrieval tests.
SHOP_PASSAGES = [
    {"id": f"doc#{n}", "source": "kb/doc.md", "title": "Shop", "text": text}
    for n, text in enumerate(
        [
            "Shop > Refunds: Refunds are issued to the original payment method within 5 "
            "business days after your return arrives.",
            "Shop > Express shipping: Express shipping costs $14.95 and is not available to "
            "PO boxes.",
            "Shop > Gift cards: Gift cards never expire and are delivered by email.",
            "Shop > Store: Our Portland store is open Monday to Saturday from 10 am to 7 pm.",
        ],
        start=1,
    )
]


def watch_for_readers(fifo: Path) -> threading.Event:
    """Set once anything opens ``fifo`` for reading: a writer's open blocks until then, so a
    test can tell whether the code under test ever opened the FIFO."""
    opened = threading.Event()

    def wait_for_a_reader() -> None:
        descriptor = os.open(fifo, os.O_WRONLY)
        opened.set()
        os.close(descriptor)

    threading.Thread(target=wait_for_a_reader, daemon=True).start()
    return opened


def release_watch(fifo: Path, opened: threading.Event) -> None:
    """Open the FIFO's read end once, so the thread ``watch_for_readers`` started ends."""
    if not opened.is_set():
        descriptor = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        opened.wait(5)
        os.close(descriptor)


@contextmanager
def failing_after(seconds: int) -> Iterator[None]:
    """Raise ``TimeoutError`` instead of hanging (as a blocking open of a FIFO would)."""

    def hang(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def job_module(tmp_path: Path, monkeypatch: Any, name: str, source: str) -> str:
    """A worker module written into ``tmp_path``, importable by the workers torchrun starts
    (and, after ``monkeypatch.syspath_prepend``, by the test)."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    return name


INGEST_PARAMETERS = CONF / "base" / "parameters_ingest.yml"


def run_ingest(raw: Path, written: Path, **overrides: object) -> dict:
    """The ingest pipeline over ``raw`` with conf/base's parameters and ``overrides``: every
    output, the ones kept on disk (as in the project) read back from ``written``."""
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from llm_pipeline.datasets import JSONLinesDataset, RawFolderDataset
    from llm_pipeline.pipelines.ingest import create_pipeline
    from llm_pipeline.pipelines.ingest.pipeline import KINDS, SPLITS

    datasets = {f"raw_{kind}": RawFolderDataset(str(raw / kind)) for kind in KINDS}
    params = {**yaml.safe_load(INGEST_PARAMETERS.read_text())["ingest"], **overrides}
    datasets["params:ingest"] = MemoryDataset(params)
    # On disk, as in the project: memory datasets are released once their last reader ran.
    on_disk = ("quarantine", "ingest_accounting", *(f"ingested_{name}" for name in SPLITS))
    for name in on_disk:
        datasets[name] = JSONLinesDataset(str(written / f"{name}.jsonl"))
    outputs = SequentialRunner().run(create_pipeline(), DataCatalog(datasets=datasets))
    loaded = {name: dataset.load() for name, dataset in outputs.items()}
    # Read from the files, as the next stage reads them (a fresh dataset keeps no table).
    written_back = {
        name: JSONLinesDataset(str(written / f"{name}.jsonl")).load() for name in on_disk
    }
    return {**loaded, **written_back}


def counted_loads(monkeypatch: Any) -> list[str]:
    """The folders whose weights are loaded from now on (each load of a 70B model costs
    hundreds of GB of the Kedro process's memory)."""
    from transformers import PreTrainedModel

    loads: list[str] = []
    original = PreTrainedModel.from_pretrained.__func__

    def counting(cls, folder, *args, **kwargs):
        loads.append(str(folder))
        return original(cls, folder, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
    return loads
