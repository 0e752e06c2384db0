"""Vietnamese text normalisation applied before understanding (no Rasa imports)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng
# Open syllables ending in oa/oe/uy take the tone on the first vowel in the common ("old")
# placement: hoà → hòa, khoẻ → khỏe, thuỷ → thủy. "qu" + y (quý) is left alone. The second
# vowel must carry the tone and nothing else: in NFD the dot below comes before a circumflex
# or breve ("luật", "hoặc", "Huệ"), and a vowel with its own mark always keeps the tone.
_OPEN_SYLLABLE = re.compile(
    r"(?<![qQ])([oOuU])([aAeEyY])([" + TONE_MARKS + r"])(?![^\W\d_]|[\u0300-\u036f])"
)
# Lone surrogates (from JSON escapes such as "\ud800") cannot be encoded; control characters
# (NUL, ESC, C1; not tab or line breaks) have no business in a message and break some stores.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Length-preserving: a lone surrogate becomes U+FFFD and a control character a space, so
    the text can be encoded as UTF-8 and stored anywhere (channels apply it to what arrives)."""
    return _UNSAFE.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else " ", text)


def normalize_text(text: str) -> str:
    """Clean, NFC and one tone placement, so "hoà"/"hòa" and NFD/NFC input look the same.

    Length-preserving for NFC input (entity offsets in training data stay valid).
    """
    decomposed = unicodedata.normalize("NFD", clean_text(text))
    moved = _OPEN_SYLLABLE.sub(lambda m: m.group(1) + m.group(3) + m.group(2), decomposed)
    return unicodedata.normalize("NFC", moved)


VALUE_ENTITIES = ("otp", "cccd", "phone", "dossier_code")
_FILLER = re.compile(r"[\s.,!?:;]*")


def is_bare_value(text: str, entities: list[dict[str, Any]]) -> bool:
    """True when the message is only values the extractors found (a one-time code, an ID or phone
    number, a dossier code) and punctuation: it answers "please type …", i.e. `inform`, whatever
    the classifier thinks six bare digits mean (seen: "196202" as `deny`, 0.54)."""
    spans = sorted(
        (e["start"], e["end"])
        for e in entities
        if e.get("entity") in VALUE_ENTITIES
        and isinstance(e.get("start"), int)
        and isinstance(e.get("end"), int)
    )
    if not spans:
        return False
    position = 0
    for start, end in spans:
        if start > position and not _FILLER.fullmatch(text[position:start]):
            return False
        position = max(position, end)
    return bool(_FILLER.fullmatch(text[position:]))
