"""Accent-insensitive phrase matching for entity values (services, ratings).

Multi-syllable phrases match whether or not the citizen typed diacritics ("gia han tam tru");
a one-syllable phrase must match with its diacritics, because folded single syllables collide
with everyday words ("cân" → "can" as in "cần").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.vietnamese.vn import fold


@dataclass(frozen=True)
class PhraseMatch:
    start: int
    end: int
    entity: str
    value: str


class Lexicon:
    """Longest-match lookup of surface forms → (entity, value)."""

    def __init__(self, phrases: dict[str, tuple[str, str]]) -> None:
        self._exact: dict[str, tuple[str, str]] = {}
        self._folded: dict[str, tuple[str, str]] = {}
        for surface, target in phrases.items():
            key = " ".join(surface.lower().split())
            if not key:
                continue
            self._exact[key] = target
            if len(key.split()) > 1:
                self._folded.setdefault(fold(key), target)
        alternatives = sorted({*self._exact, *self._folded}, key=len, reverse=True)
        body = "|".join(re.escape(a).replace(r"\ ", r"\s+") for a in alternatives) or "(?!)"
        self._pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)")

    def find(self, text: str) -> list[PhraseMatch]:
        """Non-overlapping matches; where exact and folded matches overlap, the longest wins."""
        candidates: list[PhraseMatch] = []
        for source, table in ((text.lower(), self._exact), (fold(text), self._folded)):
            for m in self._pattern.finditer(source):
                target = table.get(" ".join(m.group(0).split()))
                if target is not None:
                    candidates.append(PhraseMatch(m.start(), m.end(), *target))
        chosen: list[PhraseMatch] = []
        for cand in sorted(candidates, key=lambda c: (c.start - c.end, c.start)):
            if not any(cand.start < c.end and c.start < cand.end for c in chosen):
                chosen.append(cand)
        return sorted(chosen, key=lambda c: c.start)
