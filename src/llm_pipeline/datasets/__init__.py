"""Custom Kedro datasets: raw input folders, JSON Lines tables, folders, the model registry, and
MLflow metrics logged in one request."""

from llm_pipeline.datasets.jsonl import JSONLinesDataset
from llm_pipeline.datasets.lineage import LineageDataset
from llm_pipeline.datasets.mlflow_metrics import MlflowMetricsBatchDataset
from llm_pipeline.datasets.mlflow_registry import (
    MlflowRegistryDataset,
    RegistryCandidate,
    RegistryModelFolderDataset,
)
from llm_pipeline.datasets.model_folder import (
    Folder,
    FolderDataset,
    ModelFolder,
    ModelFolderDataset,
)
from llm_pipeline.datasets.raw_folder import RawFolderDataset
from llm_pipeline.datasets.starting_model import StartingModelDataset

__all__ = [
    "Folder",
    "FolderDataset",
    "JSONLinesDataset",
    "LineageDataset",
    "MlflowMetricsBatchDataset",
    "MlflowRegistryDataset",
    "ModelFolder",
    "ModelFolderDataset",
    "RawFolderDataset",
    "RegistryCandidate",
    "RegistryModelFolderDataset",
    "StartingModelDataset",
]
