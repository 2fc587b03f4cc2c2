"""The registered model as MLflow serves it: a chat model that answers from the passages of the
organisation's documents it carries, or the chat as it comes when it was trained without them
(``grounded_chat.py``)."""
