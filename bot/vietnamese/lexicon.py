"""Accent-insensitive phrase matching for entity values (services, ratings).

Multi-syllable phrases match whether or not the citizen typed diacritics ("gia han tam tru");
a one-syllable phrase must match with its diacritics, because folded single syllables collide
with everyday words ("cân" → "can" as in "cần"). Phrases of three syllables or more also match
with small typos: a few edits on the accent-free form ("giay phep khai thac nuoc duoi dat").
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from bot.vietnamese.vn import fold


@dataclass(frozen=True)
class PhraseMatch:
    start: int
    end: int
    entity: str
    value: str

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end


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
        # Typo-tolerant matching: forms of three syllables or more, indexed by their first and
        # by their second syllable (a typo in one of them still anchors the other).
        self._by_anchor: dict[tuple[int, str], list[str]] = defaultdict(list)
        for folded in self._folded:
            syllables = folded.split()
            if len(syllables) >= FUZZY_MIN_SYLLABLES:
                self._by_anchor[(0, syllables[0])].append(folded)
                self._by_anchor[(1, syllables[1])].append(folded)
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
        chosen = _non_overlapping(candidates)
        chosen.extend(_non_overlapping(self._near_misses(text, chosen)))  # none overlaps `chosen`
        return sorted(chosen, key=lambda c: c.start)

    def _near_misses(self, text: str, taken: list[PhraseMatch]) -> list[PhraseMatch]:
        """Windows of words within a few edits of a long form, outside what matched exactly."""
        words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(fold(text))]
        found: list[PhraseMatch] = []
        for i in range(len(words)):
            if any(t.start <= words[i][0] < t.end for t in taken):
                continue
            forms = set(self._by_anchor.get((0, words[i][2]), ()))
            if i + 1 < len(words):
                forms.update(self._by_anchor.get((1, words[i + 1][2]), ()))
            for form in forms:
                match = self._near(words, i, form)
                if match and not any(t.overlaps(*match) for t in taken):
                    found.append(PhraseMatch(*match, *self._folded[form]))
        return found

    @staticmethod
    def _near(words: list[tuple[int, int, str]], i: int, form: str) -> tuple[int, int] | None:
        """The span of words from i (one syllable more or less) within the form's edit budget."""
        syllables = form.split()
        limit = max(1, len(form) // FUZZY_CHARS_PER_EDIT)
        for k in (len(syllables), len(syllables) - 1, len(syllables) + 1):
            window = words[i : i + k]
            if len(window) < k:
                continue
            typed = [w for _, _, w in window]
            # Each edit spoils at most one syllable: most of them must be there as typed.
            if sum(w in syllables for w in typed) < len(syllables) - limit:
                continue
            if within_edits(" ".join(typed), form, limit):
                return window[0][0], window[-1][1]
        return None


FUZZY_MIN_SYLLABLES = 3
FUZZY_CHARS_PER_EDIT = 10  # one edit per ten characters of the form
_WORD = re.compile(r"\w+")


def _non_overlapping(candidates: list[PhraseMatch]) -> list[PhraseMatch]:
    """Longest first, then leftmost; a candidate overlapping a chosen one is dropped."""
    chosen: list[PhraseMatch] = []
    for cand in sorted(candidates, key=lambda c: (c.start - c.end, c.start)):
        if not any(c.overlaps(cand.start, cand.end) for c in chosen):
            chosen.append(cand)
    return chosen


def within_edits(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of a and b is at most `limit`: only the diagonal band of width
    2 × limit is computed, and the loop stops once the whole band is over the limit."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    over = limit + 1
    previous = {j: j for j in range(min(len(b), limit) + 1)}
    for i in range(1, len(a) + 1):
        current = {}
        for j in range(max(0, i - limit), min(len(b), i + limit) + 1):
            if j == 0:
                current[j] = i
                continue
            current[j] = min(
                previous.get(j, over) + 1,
                current.get(j - 1, over) + 1,
                previous.get(j - 1, over) + (a[i - 1] != b[j - 1]),
            )
        if min(current.values()) > limit:
            return False
        previous = current
    return previous.get(len(b), over) <= limit
