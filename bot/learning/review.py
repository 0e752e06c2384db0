"""Checking a reviewed export example by example, and merging what passes into nlu/reviewed.yml.

Each example is accepted, a duplicate (already trained on: skipped) or refused, with the reason.
Refused: an intent not in domain.yml (or a system-only EXTERNAL_ one), an empty or over-long
example, an unmasked ID or phone number, entity brackets, two intents for one sentence, and any
sentence of the held-out evaluation sets (accents, case and punctuation aside): measuring on
sentences the model was trained on would measure nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.learning.heldout import held_out_keys, sentence_key
from bot.learning.nlu_data import (
    REVIEWED_FILE,
    NluExample,
    domain_intents,
    merged_reviewed,
    read_examples,
    training_examples,
    training_key,
    write_atomically,
)

Decision = Literal["accepted", "duplicate", "refused"]
MAX_LENGTH = 300
SYSTEM_PREFIX = "EXTERNAL_"
# Nine or more digits in a row (single spaces or dots between them allowed: "0905 123 456"),
# not the visible tail of a masked number ("066*******34", "*********234").
_UNMASKED_NUMBER = re.compile(r"(?<![\d*])\d(?:[ .]?\d){8,}(?![\d*])", re.ASCII)


@dataclass(frozen=True)
class Verdict:
    example: NluExample
    decision: Decision
    reason: str = ""
    kinds: tuple[str, ...] = ()  # of a refusal, for counting: "held_out", "unmasked_number", …


@dataclass(frozen=True)
class ReviewReport:
    verdicts: tuple[Verdict, ...]
    written: Path | None  # None: nothing accepted, or a dry run

    def count(self, decision: Decision) -> int:
        return sum(v.decision == decision for v in self.verdicts)


def _where(path: Path) -> str:
    """`nlu/chitchat.yml`, `bench/independent_set.yml`: the folder and the file."""
    return f"{path.parent.name}/{path.name}"


def refusals(text: str, intent: str, intents: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, reason) of each thing that keeps this example out of training (none: it may go)."""
    if not text:
        return [("empty", "empty example")]
    found: list[tuple[str, str]] = []
    if intent not in set(intents):
        found.append(("unknown_intent", f"intent '{intent}' is not in domain.yml"))
    elif intent.startswith(SYSTEM_PREFIX):
        found.append(("system_intent", f"'{intent}' is triggered by the system only, never typed"))
    if len(text) > MAX_LENGTH:
        found.append(("too_long", f"{len(text)} characters, more than {MAX_LENGTH}"))
    for match in _UNMASKED_NUMBER.finditer(text):
        digits = sum(c.isdigit() for c in match.group())
        found.append(
            ("unmasked_number", f"unmasked number of {digits} digits (mask it: *********234)")
        )
    if "[" in text or "]" in text:
        found.append(("brackets", "square brackets (Rasa reads them as an entity annotation)"))
    return found


def validate(
    examples: Sequence[NluExample],
    *,
    intents: Iterable[str],
    held_out: dict[str, Path],
    existing: dict[str, NluExample],
) -> list[Verdict]:
    """A verdict per example, in file order. `held_out` maps sentence keys to their set,
    `existing` training keys to the example already in nlu/."""
    known = tuple(intents)
    examples = [NluExample(e.path, e.line, e.intent, " ".join(e.text.split())) for e in examples]
    intents_of: dict[str, dict[str, int]] = {}  # sentence key → intent → first line
    for example in examples:
        intents_of.setdefault(sentence_key(example.text), {}).setdefault(
            example.intent, example.line
        )
    verdicts: list[Verdict] = []
    seen: dict[str, NluExample] = {}  # earlier examples of this file, by training key
    for example in examples:
        text = example.text
        reasons = refusals(text, example.intent, known)
        key, sentence = training_key(text), sentence_key(text)
        if text and sentence in held_out:
            reasons.append(
                (
                    "held_out",
                    f"same sentence as one of the held-out set {_where(held_out[sentence])} "
                    "(accents, case and punctuation aside): it must never be trained on",
                )
            )
        others = [
            f"line {line} as '{intent}'"
            for intent, line in intents_of[sentence].items()
            if intent != example.intent
        ]
        if text and others:
            reasons.append(
                ("conflict", f"the same sentence is also given {', '.join(others)}: which is it?")
            )
        if reasons:
            kinds = tuple(dict.fromkeys(kind for kind, _ in reasons))
            message = "; ".join(reason for _, reason in reasons)
            verdicts.append(Verdict(example, "refused", message, kinds))
            continue
        if key in existing:
            found = existing[key]
            other = f" as '{found.intent}'" if found.intent != example.intent else ""
            verdicts.append(
                Verdict(example, "duplicate", f"already in {_where(found.path)}{other}")
            )
        elif key in seen:
            verdicts.append(Verdict(example, "duplicate", f"repeats line {seen[key].line}"))
        else:
            seen[key] = example
            verdicts.append(Verdict(example, "accepted"))
    return verdicts


def review(
    export: Path,
    *,
    nlu_dir: Path,
    domain: Path,
    held_out_sets: Sequence[Path],
    dry_run: bool = False,
) -> ReviewReport:
    """Check the reviewed export and merge the accepted examples into nlu_dir/reviewed.yml.

    Raises NluFileError or HeldOutError when a file cannot be read: then nothing is written."""
    examples = read_examples(export, only_intents=True)
    verdicts = validate(
        examples,
        intents=domain_intents(domain),
        held_out=held_out_keys(held_out_sets),
        existing=training_examples(nlu_dir),
    )
    additions = [(v.example.intent, v.example.text) for v in verdicts if v.decision == "accepted"]
    if not additions:
        return ReviewReport(tuple(verdicts), None)
    merged = merged_reviewed(nlu_dir, additions)  # also in a dry run: it checks reviewed.yml
    if dry_run:
        return ReviewReport(tuple(verdicts), None)
    target = nlu_dir / REVIEWED_FILE
    write_atomically(target, merged)
    return ReviewReport(tuple(verdicts), target)
