"""One round of the learning loop: flag a pilot week's misses, review them, retrain, compare.

An NLU-only model is trained on a copy of nlu/ and parses every utterance of the learning batch
(`bench/learning_batch.yml`, the "pilot week"). The utterances whose top intent differs from
their label are what officers would flag: they are exported the way the console exports flags
(numbers masked, `console/labels.py`), with their labelled intents, and go through the review
step of `python -m bot nlu-review` (bot/learning) into the copy's nlu/reviewed.yml, the
independent set held out. A second model is trained on the merged copy. The independent set
(`bench/independent_set.yml`) is parsed by both models, as written and with diacritics stripped.

Scores: intent accuracy of the classifier's top intent (FallbackClassifier set aside, as in
bench_nlu.py); service accuracy over the utterances with a `service` label: the predicted
service entity values are exactly {that code}. Only utterances whose intent is in domain.yml
count (and only those can be flagged); the others are reported as set aside. The real nlu/ is
never written.

    python bench/bench_learning.py [--batch PATH] [--test-set PATH] [--config PATH]

Env: BENCH_LEARNING_BATCH, BENCH_LEARNING_TEST_SET (defaults of the two paths).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_nlu import (
    DEFAULT_CONFIG,
    DOMAIN,
    NLU_DIR,
    Tally,
    accuracy,
    examples,
    load_agent,
    load_training_data,
    parse_into,
    score,
    split_by_domain,
    train_nlu_model,
    typed_intents,
)
from bench.common import print_table, progress
from bot.core.models import MessageFlag
from bot.governance.pii import mask_text
from bot.learning.heldout import (
    INDEPENDENT_SET,
    LEARNING_BATCH,
    HeldOutError,
    Utterance,
    load_utterances,
    sentence_key,
)
from bot.learning.nlu_data import plain_text, training_examples
from bot.learning.review import ReviewReport, review
from console.labels import nlu_yaml

HEADERS = [
    "model",
    "training examples",
    "batch added",
    "intent acc",
    "intent acc (accent-stripped)",
    "service acc",
    "train s",
]


@dataclass
class Scores:
    original: Tally
    stripped: Tally

    def row(self, name: str, examples: int, added: int, train_s: float | None) -> list[object]:
        """A table row; train_s None: not retrained."""
        tally = self.original
        return [
            name,
            examples,
            added,
            accuracy(tally),
            accuracy(self.stripped),
            tally.service_accuracy(),
            round(train_s, 1) if train_s is not None else "–",
        ]


def flag_misses(model: str, batch: Sequence[Utterance]) -> tuple[list[MessageFlag], float]:
    """The batch utterances the model gets wrong, as flags with their labelled intent, and the
    model's accuracy on the batch."""
    tally = Tally()
    parse_into(load_agent(model), [(examples(batch), tally, 0)])
    flags = [
        # stored as console/labels.py flag_message stores it (never added to a session here)
        MessageFlag(
            text=mask_text(" ".join(u.text.split()))[:1000],
            predicted_intent=predicted,
            correct_intent=u.intent,
        )
        for u, predicted in zip(batch, tally.predicted, strict=True)
        if predicted != u.intent
    ]
    right = len(batch) - len(flags)
    return flags, right / len(batch) if batch else 0.0


def set_aside(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    listed = ", ".join(f"{intent} {n}" for intent, n in sorted(counts.items()))
    return f"{sum(counts.values())} ({listed})"


def refusal_kinds(report: ReviewReport) -> str:
    """How many refusals of each kind (held_out, unmasked_number, …), most frequent first."""
    kinds = Counter(kind for v in report.verdicts for kind in v.kinds)
    return ", ".join(f"{kind} {n}" for kind, n in kinds.most_common()) or "none"


def run(batch_path: Path, test_path: Path, config: Path) -> None:
    intents = typed_intents()
    batch, batch_aside = split_by_domain(load_utterances(batch_path), intents)
    test_set, test_aside = split_by_domain(load_utterances(test_path), intents)
    trained = {sentence_key(plain_text(e.text)) for e in training_examples(NLU_DIR).values()}
    leaked = {
        path.name: sum(sentence_key(u.text) in trained for u in utterances)
        for path, utterances in ((test_path, test_set), (batch_path, batch))
    }
    progress(
        f"learning batch {len(batch)} utterances, independent set {len(test_set)} "
        f"(in the domain); config {config.name}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_learning_") as tmp_name:
        tmp = Path(tmp_name)
        nlu = Path(shutil.copytree(NLU_DIR, tmp / "nlu"))
        before_n = len(load_training_data(nlu).intent_examples)
        progress(f"before: training on {before_n} examples")
        before_s, before_model = train_nlu_model(config, nlu, tmp / "models", "before")
        progress(f"before: trained in {before_s:.1f} s; parsing the learning batch")
        flags, batch_acc = flag_misses(before_model, batch)
        progress(f"{len(flags)} misclassified of {len(batch)}; parsing the independent set ×2")
        before = Scores(*score(before_model, test_set))

        export = tmp / "flags.yml"
        export.write_text(nlu_yaml(flags), encoding="utf-8")  # the console's export
        report = review(export, nlu_dir=nlu, domain=DOMAIN, held_out_sets=[test_path])
        added = report.count("accepted")
        after_n = len(load_training_data(nlu).intent_examples)
        progress(
            f"review: {added} accepted, {report.count('duplicate')} duplicate, "
            f"{report.count('refused')} refused"
        )
        if added:
            progress(f"after: training on {after_n} examples")
            after_s, after_model = train_nlu_model(config, nlu, tmp / "models", "after")
            progress(f"after: trained in {after_s:.1f} s; parsing the independent set ×2")
            after = Scores(*score(after_model, test_set))
        else:
            progress("nothing added: the model after is the model before")
            after_s, after = 0.0, before

    print_table(
        f"One round of the learning loop ({batch_path.name} flagged and reviewed into a copy of "
        f"nlu/; scores on {test_path.name}, {len(test_set)} utterances)",
        HEADERS,
        [
            before.row("before", before_n, 0, before_s),
            after.row("after", after_n, added, after_s if added else None),
        ],
    )
    print(
        f"Set aside (intent not in domain.yml): {test_path.name} {set_aside(test_aside)}; "
        f"{batch_path.name} {set_aside(batch_aside)}."
    )
    print(
        f"Learning batch: accuracy {batch_acc:.3f} before; {len(flags)} flagged; review: "
        f"{added} accepted, {report.count('duplicate')} duplicate, {report.count('refused')} "
        f"refused ({refusal_kinds(report)})."
    )
    print(
        "Held-out sentences already in nlu/ before the round (accents, case and punctuation "
        f"aside): {', '.join(f'{name} {n}' for name, n in leaked.items())}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    batch = Path(os.environ.get("BENCH_LEARNING_BATCH", LEARNING_BATCH))
    test_set = Path(os.environ.get("BENCH_LEARNING_TEST_SET", INDEPENDENT_SET))
    parser.add_argument("--batch", type=Path, default=batch, help=f"default {batch}")
    parser.add_argument("--test-set", type=Path, default=test_set, help=f"default {test_set}")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pipeline config")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    # bench/run.py calls main() with its own sys.argv, so only read arguments when run directly.
    args = parse_args(argv if argv is not None or __name__ == "__main__" else [])
    for path in (args.batch, args.test_set):
        if not path.is_file():
            print(f"bench_learning: skipped, {path} not found", file=sys.stderr)
            return
    if not args.config.is_file():
        raise SystemExit(f"config not found: {args.config}")
    try:
        run(args.batch, args.test_set, args.config)
    except HeldOutError as exc:
        raise SystemExit(f"bench_learning: {exc}") from exc


if __name__ == "__main__":
    main()
