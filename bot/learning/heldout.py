"""The frozen held-out sets (`bench/independent_set.yml`, `bench/learning_batch.yml`) and the
key that says two sentences are the same one, however they are accented, cased or spaced."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core.config import PROJECT_ROOT
from bot.vietnamese.vn import fold

INDEPENDENT_SET = PROJECT_ROOT / "bench" / "independent_set.yml"
LEARNING_BATCH = PROJECT_ROOT / "bench" / "learning_batch.yml"
HELD_OUT_SETS = (INDEPENDENT_SET, LEARNING_BATCH)

# Punctuation and symbols (not the "*" of masked numbers) do not make another sentence.
_NOT_WORD = re.compile(r"[^\w*]+")


class HeldOutError(ValueError):
    """A held-out set that is missing or not in the expected format."""


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str
    service: str | None = None
    style: str | None = None


def sentence_key(text: str) -> str:
    """Lower case, no diacritics, punctuation as spaces, whitespace collapsed: "Đổi CCCD?" and
    "doi  cccd" have the same key."""
    return " ".join(_NOT_WORD.sub(" ", fold(text)).split())


def load_utterances(path: Path) -> list[Utterance]:
    """`utterances:` as a list of mappings with `text`, `intent`, optional `service`, `style`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise HeldOutError(f"{path}: not found") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise HeldOutError(f"{path}: cannot be read ({exc})") from exc
    items = data.get("utterances") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise HeldOutError(f"{path}: expected a top-level `utterances:` list")
    utterances: list[Utterance] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("text") or not item.get("intent"):
            raise HeldOutError(f"{path}: utterance {number} needs `text` and `intent`")
        service, style = item.get("service"), item.get("style")
        utterances.append(
            Utterance(
                text=str(item["text"]),
                intent=str(item["intent"]),
                service=str(service) if service else None,
                style=str(style) if style else None,
            )
        )
    return utterances


def held_out_keys(paths: Iterable[Path]) -> dict[str, Path]:
    """The key of every held-out sentence, with the set it comes from (the first, if several)."""
    keys: dict[str, Path] = {}
    for path in paths:
        for utterance in load_utterances(path):
            keys.setdefault(sentence_key(utterance.text), path)
    return keys
