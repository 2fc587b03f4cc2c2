"""Kedro project settings: where configuration lives and how environments merge."""

import warnings

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys of a stage's parameters instead of the whole stage.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}

# kedro-mlflow imports MLflow's pyfunc module, which warns about a class of MLflow's own.
warnings.filterwarnings("ignore", message="Add type hints to the `predict` method")
