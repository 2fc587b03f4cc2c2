"""Training throughput: tokens per second and model FLOPs utilisation (MFU), as Trainer logs.

MFU is the model's FLOPs per second over the hardware's peak. Model FLOPs per token are
``6 * N + 12 * L * A * T`` (PaLM, appendix B): ``N`` the parameters that multiply every token
(all but the input embedding tables, the output projection counted even when it is tied to
them), ``L`` layers, ``A`` the width of attention (heads * head size), ``T`` the block length.
Recomputation under gradient checkpointing is not model FLOPs and is not counted.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# Dense (not sparse) bf16 tensor-core peaks per GPU from the vendors' data sheets, matched
# against the name torch.cuda reports ("NVIDIA H100 80GB HBM3", "NVIDIA L40S"), the first that
# is in it: a name inside another comes after it (H100 NVL and PCIe before H100, A100 before A10,
# L40S and L40 before L4). The A10G is AWS's A10: NVIDIA publishes the A10's figure only.
# docs/training.md has this table; tests/training/test_throughput.py keeps them equal.
PEAK_FLOPS_BY_GPU_NAME = (
    ("B200", 2250e12),
    ("H200 NVL", 835e12),
    ("H200", 989e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("A10G", 125e12),
    ("A10", 125e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("V100", 125e12),
    ("T4", 65e12),
)


def peak_flops_for(name: str) -> float | None:
    """The dense bf16 peak of the GPU that torch.cuda calls ``name``, if it is a known one."""
    return next((peak for known, peak in PEAK_FLOPS_BY_GPU_NAME if known in name), None)


def default_peak_flops() -> float | None:
    """The peak FLOPs per second of this machine's GPU if it is a known one, else None."""
    import torch

    if not torch.cuda.is_available():
        return None
    return peak_flops_for(torch.cuda.get_device_name())


def model_flops_per_token(model: Any, sequence_length: int) -> float:
    """Forward and backward FLOPs for one token of a decoder of ``sequence_length`` tokens."""
    config = model.config
    matmul_parameters = model.num_parameters(exclude_embeddings=True)
    if getattr(config, "tie_word_embeddings", False):
        # A tied head shares the embedding's weights but still multiplies every token.
        matmul_parameters += model.get_output_embeddings().weight.numel()
    heads = config.num_attention_heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // heads
    attention = 12 * config.num_hidden_layers * heads * head_size * sequence_length
    return 6 * matmul_parameters + attention


class ThroughputCallback(TrainerCallback):
    """Add ``tokens_per_second`` (all ranks) and ``mfu`` to every training log entry.

    Tokens are counted as this rank's model sees them, times the number of ranks (each gets as
    many batches); time excludes evaluation and checkpoint saving.
    The numbers go into the log entry the Trainer keeps (``training_log.json``) and into the
    ``logs`` that callbacks after this one receive, so list it before the MLflow callback.
    """

    def __init__(self, sequence_length: int, peak_flops_per_device: float | None):
        self._sequence_length = sequence_length
        self._peak = peak_flops_per_device
        self._flops_per_token = 0.0
        self._world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._tokens = 0
        self._mark = 0.0
        self._paused = 0.0
        self._interval_start = 0.0
        self._hook: Any = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._flops_per_token = model_flops_per_token(model, self._sequence_length)
        self._hook = model.register_forward_pre_hook(self._count_tokens, with_kwargs=True)
        if self._peak is None and state.is_world_process_zero:
            logger.info(
                "MFU is not logged: the peak FLOPs of this hardware are unknown "
                "(set peak_flops_per_device to log it)."
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()

    def on_step_begin(self, args, state, control, **kwargs):
        if not self._interval_start:
            self._interval_start = self._mark = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        self._pause()

    def on_save(self, args, state, control, **kwargs):
        self._pause()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not self._interval_start:
            return
        now = time.perf_counter()
        seconds = now - self._interval_start - self._paused
        tokens_per_second = self._tokens * self._world_size / seconds
        measured = {"tokens_per_second": tokens_per_second}
        if self._peak:
            achieved = self._flops_per_token * tokens_per_second
            measured["mfu"] = achieved / (self._peak * self._world_size)
        logs.update(measured)
        state.log_history[-1].update(measured)
        self._tokens, self._paused = 0, 0.0
        self._interval_start = self._mark = now

    def _pause(self) -> None:
        """Leave the time since the last step or log out of the measurement."""
        now = time.perf_counter()
        self._paused += now - self._mark
        self._mark = now

    def _count_tokens(self, module: Any, args: tuple, kwargs: dict) -> None:
        if module.training:
            inputs = kwargs.get("input_ids", args[0] if args else None)
            if inputs is not None:
                self._tokens += inputs.numel()
