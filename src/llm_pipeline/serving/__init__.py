"""The registered model as MLflow serves it: a chat model that answers from the passages of the
organisation's documents it carries (``grounded_chat.py``)."""
