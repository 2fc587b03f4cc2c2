"""Kedro project settings: where configuration lives and how environments merge."""

import warnings

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

# kedro-mlflow imports MLflow's pyfunc module, which warns about a class of MLflow's own.
warnings.filterwarnings("ignore", message="Add type hints to the `predict` method")

from llm_pipeline.hooks import BatchedMlflowHook, RunTimings  # noqa: E402 (after the filter)
from llm_pipeline.parameters import ParametersCheck  # noqa: E402

# kedro-mlflow's hook with each node's parameters logged in one request (hooks.py); timings of
# nodes, datasets and hooks only when bench/overhead.py asks for them. The parameters check is
# registered last, so that it runs first: a run with a misspelt key stops before anything else.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # its distribution name, as Kedro reads it
HOOKS = (BatchedMlflowHook(), *RunTimings.from_environment(), ParametersCheck())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys of a stage's parameters instead of the whole stage.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    # Kedro reads environment variables in credentials only; conf/team/mlflow.yml takes the
    # tracking server's address from MLFLOW_TRACKING_URI.
    "custom_resolvers": {"oc.env": oc.env},
}
