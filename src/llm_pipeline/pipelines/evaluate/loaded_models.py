"""Each model folder loaded once per process, however many evaluation nodes read it.

The evaluate stage scores the same models in several nodes (answers, prompt variants,
alignment evidence, canary exposure, document perplexity, the judge): each node asks here and
the first one loads. A folder is known by its resolved path and the size and modification time
of its files, so a folder written anew is loaded anew. Models stay while their parameters fit
in ``max_bytes`` (a quarter of this machine's memory unless set); the least recently used go
first. Only models are kept: tokenizers are cheap to load and callers change their padding.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

from llm_pipeline.training.models import (
    adapter_base_model,
    inference_placement,
    is_adapter_folder,
)


def _fingerprint(folder: Path) -> tuple:
    entries = sorted(folder.iterdir()) if folder.is_dir() else [folder]
    return tuple(
        (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
        for entry in entries
        if entry.is_file()
    )


def _parameter_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class LoadedModels:
    """A bounded, thread-safe store of causal language models in eval mode, keyed by folder."""

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        self.max_bytes = max_bytes
        self.loads = 0
        self._models: collections.OrderedDict[tuple, tuple[Any, int]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def causal_lm(self, folder: Path | str) -> Any:
        """The model in ``folder`` (an adapter folder with its base model), in eval mode.

        Callers must not change it (no training, no new weights): the next caller gets the
        same object.
        """
        from llm_pipeline.training.models import load_causal_lm

        path = Path(folder).resolve()
        key = (str(path), _fingerprint(path))
        if is_adapter_folder(path):
            key += (_fingerprint(Path(adapter_base_model(path)).resolve()),)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
            model = load_causal_lm(path, **inference_placement()).eval()
            self.loads += 1
            size = _parameter_bytes(model)
            # Anything older of the same folder is stale: its files changed.
            for stale in [k for k in self._models if k[0] == key[0]]:
                del self._models[stale]
            while self._models and self.held_bytes() + size > self.max_bytes:
                self._models.popitem(last=False)
            if size <= self.max_bytes:
                self._models[key] = (model, size)
            return model

    def held_bytes(self) -> int:
        return sum(size for _, size in self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


# The process's one store: the evaluate stage's nodes and the judge share it.
MODELS = LoadedModels()
