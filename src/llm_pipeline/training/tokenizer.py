"""Train a byte-level BPE tokenizer on a corpus and save it as a Hugging Face tokenizer folder.

Runs in one process (the ``tokenizers`` library is multi-threaded by itself), with that library's
own progress bars (reading, counting, merges, with ETA) on a terminal; the result is a
folder that ``AutoTokenizer.from_pretrained`` loads, with a ChatML chat template whose assistant
turns are marked for assistant-only loss.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sized
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DOCUMENT_SEPARATOR = "<|endoftext|>"
CHAT_START = "<|im_start|>"
CHAT_END = "<|im_end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (DOCUMENT_SEPARATOR, CHAT_START, CHAT_END, PAD)

# ChatML, as SmolLM2 and many others use it; {% generation %} marks what assistant-only loss
# trains on.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class TokenizerConfig(BaseModel):
    """What the tokenizer learns: its vocabulary size and how rare a merge may be."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(ge=len(SPECIAL_TOKENS) + 256)
    min_frequency: int = Field(ge=1)
    model_max_length: int = Field(ge=8)


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig, output_dir: Path) -> Path:
    """Learn byte-level BPE merges from ``texts`` and save a tokenizer folder in ``output_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        # Without a terminal its bars are hidden but still print empty lines into the log.
        show_progress=sys.stderr.isatty(),
    )
    length = len(texts) if isinstance(texts, Sized) else None
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=DOCUMENT_SEPARATOR,
        eos_token=CHAT_END,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[CHAT_START],
        model_max_length=config.model_max_length,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    output_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(output_dir)
    return output_dir
