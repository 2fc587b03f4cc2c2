"""What the feedback tests share: the parameters they start from, and tiny judges with weights
set by hand, so that what they prefer is known in advance.

In the judges, every weight is zero except: each token's embedding carries a large constant in
dimension 1 (which keeps every RMS norm monotonic in dimension 0) and, for plain text tokens, a
1 in dimension 0; attention (queries and keys zero) averages dimension 0 over the sequence.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from support import PROJECT_ROOT, tiny_llama_config

CONSTANT = 10.0


def feedback_params(**changes) -> dict:
    """conf/base/parameters_feedback.yml, with ``changes`` applied to its top-level keys."""
    path = PROJECT_ROOT / "conf/base/parameters_feedback.yml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))["feedback"]
    return {**params, **changes}


def _set_weights(model, tokenizer) -> None:
    """The weights of the module docstring; the caller sets its head."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
        embeddings = model.get_input_embeddings().weight
        embeddings[:, 1] = CONSTANT
        embeddings[:, 0] = 1.0
        embeddings[tokenizer.all_special_ids, 0] = 0.0
        attention = model.model.layers[0].self_attn
        attention.v_proj.weight[0, 0] = 1.0
        attention.o_proj.weight[0, 0] = 1.0


def build_length_reward_model(folder: Path, tokenizer_dir: Path) -> Path:
    """A one-label reward model whose score grows with the share of plain text tokens in the
    conversation: after the same prompt, a longer answer scores higher."""
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = LlamaForSequenceClassification(tiny_llama_config(tokenizer, num_labels=1))
    _set_weights(model, tokenizer)
    model.score.weight.data[0, 0] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_position_biased_judge(folder: Path, tokenizer_dir: Path) -> Path:
    """A causal LM that answers "A" whatever it is asked: pure position bias."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer, tie_word_embeddings=False))
    _set_weights(model, tokenizer)
    (letter_a,) = tokenizer.encode("A", add_special_tokens=False)
    model.lm_head.weight.data[letter_a, 1] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
