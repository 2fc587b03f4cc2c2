"""One schema per parameters file: what each ``conf/base/parameters_<stage>.yml`` may say.

Each file's top-level keys are the fields of its model here, every model refuses unknown keys
(``extra="forbid"``), and no field has a code default: the YAML of conf/base is the one home of
every value, and an environment overrides single keys of it. Sections that are a library's
config (``sft:`` is ``trl.SFTConfig``, ``lora:`` is ``peft.LoraConfig``, ...) are checked by
that class itself, constructed from the section, so that a misspelt key fails as loudly there.

``ParametersCheck`` (settings.py) runs the check when a Kedro context is created, so a run with
a misspelt key stops before any node runs, naming the key and the environment. Library sections
are checked only before a pipeline that reads them runs: importing transformers or TRL costs
seconds that ``kedro run --pipeline ingest`` does not need. A library section that passed is
remembered (``checked_marker``) and not checked again while it, the libraries and this code stay
the same: importing TRL's config classes costs seconds in every run that trains.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

from kedro.framework.hooks import hook_impl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_pipeline.hygiene.near_duplicates import LeakageConfig, NearDuplicateConfig
from llm_pipeline.hygiene.pii import PiiConfig
from llm_pipeline.hygiene.ray_engine import RayConfig
from llm_pipeline.hygiene.readers import ReaderConfig
from llm_pipeline.pipelines.evaluate.nodes import EvaluationConfig
from llm_pipeline.pipelines.feedback.nodes import FeedbackConfig
from llm_pipeline.pipelines.ingest.cleaning import CleaningConfig
from llm_pipeline.pipelines.register.nodes import RegisterConfig
from llm_pipeline.pipelines.tune.search import TuneConfig
from llm_pipeline.retrieval.config import (
    AnswerClassifierConfig,
    EncoderTuningConfig,
    RetrievalConfig,
)
from llm_pipeline.training.launch import LaunchConfig
from llm_pipeline.training.rewards import RuleRewards
from llm_pipeline.training.tokenizer import TokenizerConfig

logger = logging.getLogger(__name__)

# A section that a library's config class checks (see LIBRARY_SECTIONS).
LibrarySection = dict[str, Any]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- parameters_ingest.yml -------------------------------------------------------------------


class LeakageParameters(LeakageConfig):
    """``ingest.leakage``: which validation texts are looked for in the training data, and what
    a leak does to the run."""

    fields: list[str] = Field(min_length=1)
    min_words: int = Field(ge=0)
    action: Literal["remove", "fail"]


class IngestParameters(_Schema):
    strict: bool
    workers: Literal["auto"] | Annotated[int, Field(ge=1)]
    engine: Literal["local", "ray"]
    ray: RayConfig
    reader: ReaderConfig
    cleaning: CleaningConfig
    pii: PiiConfig
    near_duplicates: NearDuplicateConfig
    leakage: LeakageParameters
    document_validation_fraction: float = Field(ge=0, lt=1)
    conversation_validation_fraction: float = Field(ge=0, lt=1)
    preference_validation_fraction: float = Field(ge=0, lt=1)
    split_salt: str = Field(min_length=1)


class IngestFile(_Schema):
    ingest: IngestParameters


# --- parameters_validate.yml -----------------------------------------------------------------


class CharRange(_Schema):
    min: int = Field(ge=0)
    max: int = Field(ge=1)


class ValidateParameters(_Schema):
    min_rows: dict[str, int]
    document_chars: CharRange
    message_chars: CharRange
    examples_per_failure: int = Field(ge=0)


class ValidateFile(_Schema):
    validate_: ValidateParameters = Field(alias="validate")


# --- parameters_index.yml --------------------------------------------------------------------


class IndexFile(_Schema):
    retrieval: RetrievalConfig
    retrieval_encoder: EncoderTuningConfig
    answer_classifier: AnswerClassifierConfig


# --- parameters_pretrain.yml -----------------------------------------------------------------


class AdaptParameters(_Schema):
    block_size: int = Field(ge=2)
    training: LibrarySection


class PretrainParameters(_Schema):
    adapt: AdaptParameters
    tokenizer: TokenizerConfig
    architecture: Literal["llama", "gpt2"]
    block_size: int = Field(ge=2)
    model: LibrarySection
    peak_flops_per_device: float | None = Field(gt=0)
    training: LibrarySection


class PretrainFile(_Schema):
    pretrain: PretrainParameters


# --- how a model to train is loaded (parameters_finetune.yml and parameters_align.yml) -------


class ModelInitKwargs(_Schema):
    """How a model to train is loaded (``training/models.py``, ``model_init_kwargs``); null:
    the library's choice."""

    dtype: Literal["float32", "bfloat16", "float16", "auto"]
    attn_implementation: str | None
    # transformers.BitsAndBytesConfig fields (QLoRA).
    quantization_config: dict[str, Any] | None


# --- parameters_finetune.yml -----------------------------------------------------------------


class FinetuneParameters(_Schema):
    method: Literal["full", "lora", "prompt_tuning"]
    lora: LibrarySection
    model_init_kwargs: ModelInitKwargs
    prompt_tuning: LibrarySection
    sft: LibrarySection


class FinetuneFile(_Schema):
    finetune: FinetuneParameters


# --- parameters_align.yml --------------------------------------------------------------------


class RLParameters(_Schema):
    algorithm: Literal["grpo", "rloo"]
    reward_model_weight: float
    rules: RuleRewards
    grpo: LibrarySection
    rloo: LibrarySection


class AlignParameters(_Schema):
    method: Literal["dpo", "rlhf"]
    reward_model_with_dpo: bool
    reward: LibrarySection
    reward_lora: LibrarySection | None
    rl: RLParameters
    lora: LibrarySection | None
    model_init_kwargs: ModelInitKwargs
    dpo: LibrarySection


class AlignFile(_Schema):
    align: AlignParameters


# --- the other stages: their config classes are the schema ----------------------------------


class EvaluateFile(_Schema):
    evaluate: EvaluationConfig


class RegisterFile(_Schema):
    register_: RegisterConfig = Field(alias="register")


class TuneFile(_Schema):
    tune: TuneConfig


class FeedbackFile(_Schema):
    feedback: FeedbackConfig


class LaunchFile(_Schema):
    launch: LaunchConfig


FILES: dict[str, type[_Schema]] = {
    "parameters_ingest.yml": IngestFile,
    "parameters_validate.yml": ValidateFile,
    "parameters_index.yml": IndexFile,
    "parameters_pretrain.yml": PretrainFile,
    "parameters_finetune.yml": FinetuneFile,
    "parameters_align.yml": AlignFile,
    "parameters_evaluate.yml": EvaluateFile,
    "parameters_register.yml": RegisterFile,
    "parameters_tune.yml": TuneFile,
    "parameters_feedback.yml": FeedbackFile,
    "parameters_launch.yml": LaunchFile,
}


# The project's configuration, beside src/ in a checkout.
CONF = Path(__file__).resolve().parents[2] / "conf"


def load_parameters(env: str = "base", conf: Path = CONF) -> dict[str, Any]:
    """The parameters of ``env`` merged over conf/base as ``kedro run --env`` merges them: for
    benchmarks and tests that build config objects from the YAML instead of restating it."""
    from kedro.config import OmegaConfigLoader

    from llm_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(conf), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    return loader["parameters"]


def _top_level_keys(schema: type[_Schema]) -> list[str]:
    return [field.alias or name for name, field in schema.model_fields.items()]


FILE_OF_KEY: dict[str, str] = {
    key: file for file, schema in FILES.items() for key in _top_level_keys(schema)
}


def check_parameters(params: dict[str, Any]) -> list[str]:
    """Every way ``params`` (the merged parameters of an environment) breaks its schema, one
    message per error, each naming the file and the dotted key; empty when all is well.

    Library sections are not checked here (see ``check_library_sections``)."""
    errors = [
        f"'{key}' is not a parameter of any file (conf/base has {sorted(FILE_OF_KEY)})"
        for key in params
        if key not in FILE_OF_KEY
    ]
    for file, schema in FILES.items():
        section = {key: params[key] for key in _top_level_keys(schema) if key in params}
        try:
            schema.model_validate(section)
        except ValidationError as error:
            errors += [_message(file, problem) for problem in error.errors()]
    return errors


def _message(file: str, problem: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"{file}: unknown key '{key}'"
    if problem["type"] == "missing":
        return f"{file}: '{key}' is missing"
    return f"{file}: '{key}': {problem['msg']} (got {problem.get('input')!r})"


# --- library sections ------------------------------------------------------------------------

# (top-level key, path in it) -> (module, class): the class whose constructor checks the section.
LIBRARY_SECTIONS: dict[tuple[str, ...], tuple[str, str]] = {
    ("pretrain", "adapt", "training"): ("transformers", "TrainingArguments"),
    ("pretrain", "training"): ("transformers", "TrainingArguments"),
    ("finetune", "sft"): ("trl", "SFTConfig"),
    ("finetune", "lora"): ("peft", "LoraConfig"),
    ("finetune", "prompt_tuning"): ("peft", "PromptTuningConfig"),
    ("align", "reward"): ("trl", "RewardConfig"),
    ("align", "reward_lora"): ("peft", "LoraConfig"),
    ("align", "dpo"): ("trl", "DPOConfig"),
    ("align", "lora"): ("peft", "LoraConfig"),
    ("align", "rl", "grpo"): ("trl", "GRPOConfig"),
    ("align", "rl", "rloo"): ("trl", "RLOOConfig"),
}
MODEL_CONFIGS = {"llama": "LlamaConfig", "gpt2": "GPT2Config"}

# Where a passed library section leaves its marker: $LLM_PIPELINE_CACHE_DIR, else the user's
# cache (beside the converted GGUF models of conf/base/globals.yml).
CACHE_VARIABLE = "LLM_PIPELINE_CACHE_DIR"


@functools.cache
def _checking_environment() -> tuple[Any, ...]:
    versions = {}
    for package in ("transformers", "trl", "peft", "torch", "pydantic"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    code = hashlib.sha256()
    for source in (Path(__file__), Path(__file__).with_name("training") / "jobs.py"):
        code.update(source.read_bytes())
    return versions, code.hexdigest(), sys.version, socket.gethostname()


def checked_marker(where: str, module: str, name: str, fields: dict[str, Any]) -> Path:
    """The file whose existence says that section ``where`` with these ``fields`` passed its
    check by ``module.name``: named by a digest of the fields, the versions of Python and the
    checking libraries, this code and the host (a class may check against the hardware)."""
    identity = [where, module, name, fields, *_checking_environment()]
    text = json.dumps(identity, sort_keys=True, default=str)
    root = Path(os.environ.get(CACHE_VARIABLE) or "~/.cache/llm-pipeline").expanduser()
    return root / "checked-parameters" / hashlib.sha256(text.encode()).hexdigest()


def check_library_sections(
    params: dict[str, Any], stages: Iterable[str] | None = None
) -> list[str]:
    """Errors of the sections that library config classes check, for the top-level keys in
    ``stages`` (None: all), each naming the file and the section."""
    from llm_pipeline.training.jobs import checked_fields

    wanted = set(FILE_OF_KEY if stages is None else stages)
    errors: list[str] = []
    sections = dict(LIBRARY_SECTIONS)
    architecture = params.get("pretrain", {}).get("architecture")
    if architecture in MODEL_CONFIGS:
        sections["pretrain", "model"] = ("transformers", MODEL_CONFIGS[architecture])
    with tempfile.TemporaryDirectory() as scratch:
        for path, (module, name) in sections.items():
            fields = _at(params, path)
            if path[0] not in wanted or not isinstance(fields, dict):
                continue
            where = ".".join(path)
            marker = checked_marker(where, module, name, fields)
            if marker.exists():
                continue
            config_class = getattr(importlib.import_module(module), name)
            try:
                checked_fields(config_class, fields, where)
                _construct(config_class, module, fields, scratch)
            except Exception as error:  # each library raises its own kinds
                errors.append(f"{FILE_OF_KEY[path[0]]}: '{where}' ({module}.{name}): {error}")
            else:
                _remember(marker)
    return errors


def _remember(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError as error:  # a read-only cache: the section is checked again next time
        logger.debug("Could not remember a checked section in %s: %s", marker, error)


def _at(params: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(params, dict):
            return None
        params = params.get(key)
    return params


def _construct(config_class: Callable, module: str, fields: dict, scratch: str) -> None:
    if module == "peft":
        if "task_type" in fields:
            raise ValueError("remove 'task_type': fine-tuning sets it to CAUSAL_LM")
        config_class(task_type="CAUSAL_LM", **fields)
    elif config_class.__name__.endswith("Config") and module == "transformers":
        config_class(**fields)
    else:
        # The precision is the hardware's at run time (jobs.hardware_precision), not this one's.
        precision = {} if {"bf16", "fp16"} & set(fields) else {"bf16": False}
        config_class(output_dir=scratch, report_to="none", **precision, **fields)


# --- the hook --------------------------------------------------------------------------------


class ParametersError(ValueError):
    """The parameters of an environment break their schema."""


def _refusal(errors: list[str], env: str | None) -> ParametersError:
    listed = "\n".join(f"  - {error}" for error in errors)
    return ParametersError(
        f"The parameters of environment '{env or 'local'}' (conf/base merged with "
        f"conf/{env or 'local'} and any --params) are not valid:\n{listed}"
    )


class ParametersCheck:
    """Stops a run whose parameters break their schema before any node runs."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._env: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params, self._env = context.params, context.env
        errors = check_parameters(self._params)
        if errors:
            raise _refusal(errors, self._env)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        env = run_params.get("env") or self._env
        read = {name for name in pipeline.inputs() if name.startswith("params:")}
        if "parameters" in pipeline.inputs():
            stages = None
        else:
            parts = {part for name in read for part in name.removeprefix("params:").split(".")}
            stages = [key for key in self._params if key in parts]
        errors = check_library_sections(self._params, stages)
        if errors:
            raise _refusal(errors, env)
