"""Finetune: supervised fine-tuning (full, LoRA or prompt tuning) of a chosen starting model.

``finetune.base_model`` says where the starting model comes from: ``null``, the pretrain
stage's model (the project's starting model adapted to its documents, or one trained from
scratch); anything else is named as ``starting_model`` is (``datasets/starting_model.py``).
The node is in ``torchrun_jobs.py`` because the tune stage's trials run it too.
"""

from llm_pipeline.torchrun_jobs import choose_starting_model, finetune_model

__all__ = ["choose_starting_model", "finetune_model"]
