"""Vietnamese text normalisation applied before understanding (no Rasa imports)."""

from __future__ import annotations

import re
import unicodedata

TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng
# Open syllables ending in oa/oe/uy take the tone on the first vowel in the common ("old")
# placement: hoà → hòa, khoẻ → khỏe, thuỷ → thủy. "qu" + y (quý) is left alone.
_OPEN_SYLLABLE = re.compile(r"(?<![qQ])([oOuU])([aAeEyY])([" + TONE_MARKS + r"])(?![^\W\d_])")


def normalize_text(text: str) -> str:
    """NFC and one tone placement, so "hoà"/"hòa" and NFD/NFC input look the same.

    Length-preserving for NFC input (entity offsets in training data stay valid).
    """
    decomposed = unicodedata.normalize("NFD", text)
    moved = _OPEN_SYLLABLE.sub(lambda m: m.group(1) + m.group(3) + m.group(2), decomposed)
    return unicodedata.normalize("NFC", moved)
