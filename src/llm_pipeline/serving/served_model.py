"""The file MLflow logs as the registered model's code (models-from-code): it names the model
class, so loading the model imports it instead of unpickling an object."""

import warnings

from mlflow.models import set_model

from llm_pipeline.serving.grounded_chat import GroundedChatModel

with warnings.catch_warnings():
    # MLflow 3 marks ChatModel deprecated in favour of agent interfaces; it is still the one
    # that speaks the OpenAI chat-completion schema (see grounded_chat.py). Said once there,
    # not at every load.
    warnings.simplefilter("ignore", FutureWarning)
    set_model(GroundedChatModel())
