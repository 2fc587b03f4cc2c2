"""llm-pipeline: from raw organisational data to a registered, evaluated language model."""

__version__ = "0.1.0"
