"""Finetune: supervised fine-tuning (full, LoRA or prompt tuning) of a chosen starting model.

The model fine-tuned is the pretrain stage's (the project's starting model adapted to its
documents, or one trained from scratch) unless ``finetune_starting_model`` in globals.yml names
another, as ``starting_model`` is named; the catalog's dataset of that name resolves it
(``datasets/starting_model.py``), so the node only chooses.
The node is in ``training/stage_jobs.py`` because the tune stage's trials run it too.
"""

from llm_pipeline.training.stage_jobs import choose_starting_model, finetune_model

__all__ = ["choose_starting_model", "finetune_model"]
