"""Shorthand, teencode and typing leftovers → the words they stand for, before understanding.

Three steps per word, each conservative: letters typed three or more times once ("ạaaa" → "ạ",
"đcccc" → "đc"); Telex leftovers decoded only when the result is a Vietnamese syllable
("dduowcj" → "được", "cos" → "có"); then the reviewed table `shorthand.yml` ("ko" → "không",
"lltp" → "lý lịch tư pháp"). The table is data: add a form there, not here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from bot.vietnamese.text import normalize_text
from bot.vietnamese.vn import fold

TABLE = Path(__file__).with_name("shorthand.yml")
# Telex: a doubled vowel or w marks the vowel, dd is đ, a final s/f/r/x/j is the tone.
_TELEX_MARKS = (("uow", "ươ"), ("dd", "đ"), ("aa", "â"), ("aw", "ă"), ("ee", "ê"),
                ("oo", "ô"), ("ow", "ơ"), ("uw", "ư"))  # fmt: skip
_TONES = {"s": "\u0301", "f": "\u0300", "r": "\u0309", "x": "\u0303", "j": "\u0323"}
_TONE_BEFORE_CODA = re.compile(r"^(.*[aeiouyw])([sfrxj])(ch|nh|ng|[cmnpt])$")
_ONSET = "ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx]"
_NUCLEI = (
    "iêu yêu oai oay oeo uây uôi ươi ươu uya uyê uyu ai ao au ay âu ây eo êu ia iê iu oa oă oe "
    "oi ôi ơi ua uâ ưa uê ui ưi uô ươ ưu uy yê a ă â e ê i o ô ơ u ư y"
).split()
_SYLLABLE = re.compile(rf"^(?:{_ONSET})?({'|'.join(_NUCLEI)})(?:ch|nh|ng|[cmnpt])?$")
_MARKED = "ăâêôơư"


@dataclass(frozen=True)
class Shorthand:
    """The reviewed table: one-word and two-word forms → their words, and the document names
    that alone do not say which service the citizen means."""

    forms: dict[str, str]
    incidental: frozenset[str] = frozenset()

    def is_incidental(self, surface: str) -> bool:
        return " ".join(fold(surface).split()) in self.incidental

    def expand_words(self, words: list[str]) -> list[str]:
        """The words the assistant should read; two-word forms ("bao nhieu") first."""
        return [word for word, _, _ in self.expand_spans(words)]

    def expand_spans(self, words: list[str]) -> list[tuple[str, int, int]]:
        """Each word to read with the first and last index of the typed words it comes from,
        so a tokenizer can keep the citizen's offsets."""
        out: list[tuple[str, int, int]] = []
        i = 0
        while i < len(words):
            pair = f"{words[i]} {words[i + 1]}".lower() if i + 1 < len(words) else ""
            if pair in self.forms:
                out.extend((w, i, i + 1) for w in self.forms[pair].split())
                i += 2
                continue
            out.extend((w, i, i) for w in self.expand_word(words[i]))
            i += 1
        return out

    def expand_word(self, word: str) -> list[str]:
        cleaned = decode_telex(collapse_repeats(word))
        found = self.forms.get(cleaned.lower())
        return found.split() if found else [cleaned]


def collapse_repeats(word: str) -> str:
    """A letter typed three or more times counts once ("ạaaa" → "ạ"); digits are left alone."""
    folded = fold(word)
    if len(folded) != len(word):
        return word
    out: list[str] = []
    for i, ch in enumerate(word):
        run_before = i >= 1 and ch.isalpha() and folded[i - 1] == folded[i]
        if run_before and _run_length(folded, i) >= 3:
            continue
        out.append(ch)
    return "".join(out)


def _run_length(folded: str, i: int) -> int:
    start = i
    while start > 0 and folded[start - 1] == folded[i]:
        start -= 1
    end = i
    while end + 1 < len(folded) and folded[end + 1] == folded[i]:
        end += 1
    return end - start + 1


def decode_telex(word: str) -> str:
    """An ASCII word typed with Telex keys and no input method, if it decodes to a syllable."""
    lower = word.lower()
    if not lower.isascii() or not lower.isalpha() or len(lower) < 3:
        return word
    lower = _TONE_BEFORE_CODA.sub(r"\1\3\2", lower)  # "lafm" is "lamf": the tone key goes last
    body, tone = (lower[:-1], _TONES[lower[-1]]) if lower[-1] in _TONES else (lower, "")
    marked = body
    for keys, letter in _TELEX_MARKS:
        marked = marked.replace(keys, letter)
    if marked == lower or (not tone and marked == body):
        return word  # nothing Telex about it
    match = _SYLLABLE.match(marked)
    if match is None:
        return word  # not a syllable once decoded: an English word, a name, a typo
    at = match.start(1) + _tone_position(match.group(1), has_coda=match.end(1) < len(marked))
    return normalize_text(unicodedata.normalize("NFC", marked[: at + 1] + tone + marked[at + 1 :]))


def _tone_position(nucleus: str, has_coda: bool) -> int:
    """Where the tone goes in the vowel group: on the marked vowel (the last one, as in "ươ"),
    else on the last vowel before a final consonant, else the middle of three, else the first."""
    marked = [i for i, ch in enumerate(nucleus) if ch in _MARKED]
    if marked:
        return marked[-1]
    if has_coda:
        return len(nucleus) - 1
    return 1 if len(nucleus) == 3 else 0


@lru_cache(maxsize=1)
def shorthand() -> Shorthand:
    """The reviewed table, read once."""
    raw = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    forms: dict[str, str] = {}
    for section in ("words", "documents"):
        for key, value in (raw.get(section) or {}).items():
            forms[str(key).lower()] = normalize_text(str(value))
    incidental = frozenset(fold(str(d)) for d in raw.get("incidental_documents") or [])
    return Shorthand(forms, incidental)


def expand_text(text: str) -> str:
    """The message as the assistant should read it (for the classifier's features)."""
    return " ".join(shorthand().expand_words(text.split()))
