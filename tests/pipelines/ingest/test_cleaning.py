"""Text cleaning: the fast path for ASCII text treats every control character as the general
path does."""

from __future__ import annotations

import pytest
from support import parameters_of

from llm_pipeline.pipelines.ingest.cleaning import CleaningConfig, clean_text


def cleaning_config(**overrides: object) -> CleaningConfig:
    """conf/base's ``ingest.cleaning`` with ``overrides``."""
    return CleaningConfig.model_validate(parameters_of("ingest.cleaning", env="base", **overrides))


CONFIG = cleaning_config()
LINE_BREAKS = {"\r": "a\nb", "\x0c": "a\nb", "\n": "a\nb", "\t": "a b", " ": "a b"}


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_between_two_letters(code: int) -> None:
    character = chr(code)
    if character in LINE_BREAKS:
        expected = LINE_BREAKS[character]
    elif code < 0x20 or code == 0x7F:
        expected = "ab"  # a control character is removed
    else:
        expected = f"a{character}b"
    assert clean_text(f"a{character}b", CONFIG) == expected
    # The same text made non-ASCII takes the general path and must agree.
    assert clean_text(f"é a{character}b", CONFIG) == f"é {expected}"


def test_ascii_text_keeps_controls_when_asked_and_squeezes_space_and_blank_lines() -> None:
    text = "  one\x07  two\t\tthree \n four\n\n\n\nfive\x00 "
    assert clean_text(text, CONFIG) == "one two three\nfour\n\nfive"
    keeping = cleaning_config(remove_control_characters=False)
    assert clean_text(text, keeping) == "one\x07 two three\nfour\n\nfive\x00"
    clean = "Already clean text.\nSecond line."
    assert clean_text(clean, CONFIG) is clean  # unchanged text is not copied
