"""NLU quality and speed: k-fold cross-validation of intents and entities, with and without accents.

The examples in nlu/ are split into k stratified folds by intent (fixed seed). For each fold an
NLU-only model is trained on the other folds (with the explicit synonym blocks, regexes and
lookup tables) and parses the held-out examples twice: as written, and with diacritics stripped
(how many citizens type, e.g. on SMS). Reported per pipeline config and test set: accuracy and
macro-F1 of the classifier's top intent (FallbackClassifier set aside); the share of messages
the FallbackClassifier turns into `nlu_fallback` (they get "did you mean…?", not a wrong
answer); entity F1 (micro, exact start/end/type; `date` is not annotated); service accuracy
(examples with an annotated service whose predicted service values are exactly the annotated
ones); median latency of one parse; median training time per fold.

    python bench/bench_nlu.py [--config PATH ...] [--folds N] [--report]

--report also prints, for the first config (original texts), each intent's precision, recall
and F1 and every misclassified example (gold → predicted), to find the data worth fixing.

Env: BENCH_NLU_CONFIGS (comma-separated config paths), BENCH_NLU_FOLDS (default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # also turns off Rasa's training progress bars
os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

# The project root, for bench.*, bot.* and the custom pipeline components (components.*).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, print_table, progress
from bot.learning.heldout import INDEPENDENT_SET, Utterance, load_utterances, sentence_key
from bot.learning.nlu_data import domain_intents, plain_text, training_examples
from bot.learning.review import SYSTEM_PREFIX
from bot.vietnamese.vn import strip_diacritics

ROOT = Path(__file__).resolve().parent.parent
NLU_DIR = ROOT / "nlu"
DEFAULT_CONFIG = ROOT / "config.yml"
DOMAIN = ROOT / "domain.yml"
SEED = 20261123
WARMUP = 5  # parses per fold not timed
IGNORED_ENTITIES = frozenset({"date"})
SERVICE = "service"
FALLBACK = "nlu_fallback"
HEADERS = [
    "config",
    "test set",
    "intent acc",
    "intent macro-F1",
    "fallback rate",
    "entity F1",
    "service acc",
    "parse median ms",
    "train s (median)",
]
TEST_SETS = ("original", "accent-stripped")
NOISY_LOGGERS = ("rasa", "tensorflow", "absl", "h5py", "matplotlib", "transformers", "urllib3")


@dataclass
class Example:
    text: str
    intent: str
    spans: set[tuple[int, int, str]]  # annotated entities, without the ignored types
    services: set[str] | None  # annotated service values, None when there is no service entity


@dataclass
class Tally:
    """Predictions of one config on one test set, accumulated over the folds."""

    gold: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    fallbacks: int = 0
    entity_tp: int = 0
    entity_pred: int = 0
    entity_gold: int = 0
    # One entry per example that names its services: were exactly those recognised?
    services_right: list[bool] = field(default_factory=list)
    parse_ms: list[float] = field(default_factory=list)

    def service_accuracy(self) -> float | str:
        """Share of service-naming examples whose services were all and only recognised."""
        right = self.services_right
        return round(sum(right) / len(right), 3) if right else "–"

    def add(self, example: Example, parsed: dict[str, Any]) -> None:
        self.gold.append(example.intent)
        self.texts.append(example.text)
        ranking = [r["name"] for r in parsed.get("intent_ranking") or [] if r["name"] != FALLBACK]
        top = (parsed.get("intent") or {}).get("name") or "None"
        self.fallbacks += top == FALLBACK
        self.predicted.append(ranking[0] if top == FALLBACK and ranking else top)
        entities = [e for e in parsed.get("entities") or [] if e["entity"] not in IGNORED_ENTITIES]
        spans = {(e["start"], e["end"], e["entity"]) for e in entities}
        self.entity_tp += len(spans & example.spans)
        self.entity_pred += len(spans)
        self.entity_gold += len(example.spans)
        if example.services is not None:
            values = {str(e.get("value")) for e in entities if e["entity"] == SERVICE}
            self.services_right.append(values == example.services)


def quiet_logs() -> None:
    import structlog  # Rasa logs each parse through structlog, at debug level by default

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def quiet(stdout: TextIO = sys.stderr) -> Iterator[None]:
    """Silence Rasa's warnings and send its stdout chatter elsewhere (the tables own stdout)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(stdout):
        warnings.simplefilter("ignore")
        quiet_logs()
        yield


@contextlib.contextmanager
def no_training_cache() -> Iterator[None]:
    """Turn off Rasa's training cache (.rasa/cache): a cache hit would make training look free."""
    saved = os.environ.get("RASA_MAX_CACHE_SIZE")
    os.environ["RASA_MAX_CACHE_SIZE"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["RASA_MAX_CACHE_SIZE"]
        else:
            os.environ["RASA_MAX_CACHE_SIZE"] = saved


def to_example(message: Any, stripped: bool) -> Example:
    """The message's intent and entities; with stripped=True its text has no diacritics."""
    text = message.get("text")
    entities = message.get("entities") or []
    if stripped:
        # Offsets are remapped through the stripped prefix: exact even for non-NFC input.
        entities = [
            {
                **e,
                "start": len(strip_diacritics(text[: e["start"]])),
                "end": len(strip_diacritics(text[: e["end"]])),
            }
            for e in entities
        ]
        text = strip_diacritics(text)
    spans = {
        (e["start"], e["end"], e["entity"]) for e in entities if e["entity"] not in IGNORED_ENTITIES
    }
    services = {str(e.get("value")) for e in entities if e["entity"] == SERVICE} or None
    return Example(text, message.get("intent"), spans, services)


def stratified_folds(messages: list[Any], folds: int, seed: int = SEED) -> list[list[Any]]:
    """Deal each intent's shuffled examples round-robin over the folds (rotating the start)."""
    by_intent: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        by_intent[message.get("intent")].append(message)
    rng = random.Random(seed)
    parts: list[list[Any]] = [[] for _ in range(folds)]
    start = 0
    for intent in sorted(by_intent):
        examples = by_intent[intent]
        rng.shuffle(examples)
        for i, message in enumerate(examples):
            parts[(start + i) % folds].append(message)
        start = (start + len(examples)) % folds
    return parts


def load_training_data(nlu_dir: Path = NLU_DIR) -> Any:
    """Rasa's TrainingData of every NLU file of the folder."""
    with quiet():
        from rasa.shared.nlu.training_data.loading import load_data

        return load_data(str(nlu_dir))


def explicit_synonyms(nlu_dir: Path = NLU_DIR) -> dict[str, str]:
    """`synonym:` blocks of the NLU files, read from the YAML itself."""
    import yaml

    synonyms: dict[str, str] = {}
    for path in sorted(nlu_dir.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            if "synonym" in item:
                for line in item["examples"].splitlines():
                    surface = line.strip().removeprefix("- ").strip()
                    if surface:
                        synonyms[surface] = str(item["synonym"])
    return synonyms


def train_nlu_model(config: Path, nlu_data: Path, out: Path, name: str) -> tuple[float, str]:
    """Train an NLU-only model on a file or folder of NLU data, training cache off; return
    (seconds, model archive path)."""
    with quiet():
        from rasa.model_training import train_nlu

    chatter = io.StringIO()  # "Your Rasa model is trained…", or why it was not
    start = time.perf_counter()
    with quiet(chatter), no_training_cache():
        model = train_nlu(
            config=str(config), nlu_data=str(nlu_data), output=str(out), fixed_model_name=name
        )
    seconds = time.perf_counter() - start
    if not model:
        print(chatter.getvalue(), file=sys.stderr)
        raise RuntimeError(f"training with {config} produced no model (see messages above)")
    return seconds, model


def train_fold(config: Path, full: Any, train_msgs: list[Any], tmp: Path) -> tuple[float, str]:
    """Train an NLU-only model on train_msgs; return (seconds, model archive path)."""
    with quiet():
        from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
        from rasa.shared.nlu.training_data.training_data import TrainingData

    train_td = TrainingData(
        training_examples=train_msgs,
        # Only the explicit synonym blocks: Rasa also turns inline annotations into synonyms,
        # which would leak the test folds' surface forms into training.
        entity_synonyms=explicit_synonyms(),
        regex_features=full.regex_features,
        lookup_tables=full.lookup_tables,
        responses=full.responses,
    )
    data_path = tmp / "train_nlu.yml"
    data_path.write_text(RasaYAMLWriter().dumps(train_td), encoding="utf-8")
    return train_nlu_model(config, data_path, tmp / "models", "fold")


async def parse_all(agent: Any, examples: list[Example], tally: Tally, warmup: int) -> None:
    for i, example in enumerate(examples):
        start = time.perf_counter()
        parsed = await agent.parse_message(example.text)
        elapsed = (time.perf_counter() - start) * 1000
        if i >= warmup:
            tally.parse_ms.append(elapsed)
        tally.add(example, parsed)


def load_agent(model: str) -> Any:
    """A Rasa Agent of the model archive, to parse messages in-process."""
    with quiet():
        from rasa.core.agent import Agent

        return Agent.load(model)


def parse_into(agent: Any, batches: list[tuple[list[Example], Tally, int]]) -> None:
    """Parse each batch of examples into its tally, the first `warmup` parses of it not timed."""

    async def all_batches() -> None:
        with quiet():
            for examples, tally, warmup in batches:
                await parse_all(agent, examples, tally, warmup)

    asyncio.run(all_batches())


def evaluate_fold(model: str, test_msgs: list[Any], tallies: dict[str, Tally]) -> None:
    agent = load_agent(model)
    original = [to_example(m, stripped=False) for m in test_msgs]
    stripped = [to_example(m, stripped=True) for m in test_msgs]
    parse_into(
        agent,
        [(original, tallies["original"], WARMUP), (stripped, tallies["accent-stripped"], 0)],
    )


def accuracy(tally: Tally) -> object:
    correct = sum(g == p for g, p in zip(tally.gold, tally.predicted, strict=True))
    return round(correct / len(tally.gold), 3) if tally.gold else "–"


def typed_intents() -> set[str]:
    """The intents a citizen's message can have (the domain's, without the system's)."""
    return {i for i in domain_intents(DOMAIN) if not i.startswith(SYSTEM_PREFIX)}


def split_by_domain(
    utterances: Sequence[Utterance], intents: set[str]
) -> tuple[list[Utterance], Counter[str]]:
    """The utterances whose intent is in the domain, and how many others there are by intent."""
    kept = [u for u in utterances if u.intent in intents]
    return kept, Counter(u.intent for u in utterances if u.intent not in intents)


def examples(utterances: Sequence[Utterance], stripped: bool = False) -> list[Example]:
    """Held-out utterances as examples: intent and service only (no spans are annotated)."""
    return [
        Example(
            strip_diacritics(u.text) if stripped else u.text,
            u.intent,
            set(),
            {u.service} if u.service else None,
        )
        for u in utterances
    ]


def score(model: str, test_set: Sequence[Utterance], warmup: int = 0) -> tuple[Tally, Tally]:
    """Tallies of the model on the utterances as written and with diacritics stripped."""
    written, stripped = Tally(), Tally()
    parse_into(
        load_agent(model),
        [(examples(test_set), written, warmup), (examples(test_set, True), stripped, 0)],
    )
    return written, stripped


def independent_set(config: Path, name: str) -> tuple[list[list[object]], list[list[object]]]:
    """Rows for the main table (the model trained on all of nlu/, scored on the held-out
    citizens' set as written and accent-stripped) and accuracy by writing style."""
    utterances, aside = split_by_domain(load_utterances(INDEPENDENT_SET), typed_intents())
    progress(
        f"{name}: training on all of nlu/ for the independent set ({len(utterances)} "
        f"utterances; {sum(aside.values())} set aside, intents not in the domain: "
        f"{', '.join(sorted(aside)) or 'none'})"
    )
    with tempfile.TemporaryDirectory(prefix="bench_nlu_independent_") as tmp:
        train_s, model = train_nlu_model(config, NLU_DIR, Path(tmp), "independent")
        written, stripped = score(model, utterances, warmup=WARMUP)
    rows = [
        summarise(name, "independent set", written, [train_s]),
        summarise(name, "independent, accent-stripped", stripped, [train_s]),
    ]
    # Short turns ("đồng ý", "ko", "1") are also training sentences: the unseen part is the
    # stricter measure of generalisation.
    trained = {sentence_key(plain_text(e.text)) for e in training_examples(NLU_DIR).values()}
    styles = sorted({u.style or "–" for u in utterances})
    groups = {style: [(u.style or "–") == style for u in utterances] for style in styles}
    groups["not a sentence of nlu/"] = [sentence_key(u.text) not in trained for u in utterances]
    by_style = []
    for group, member in groups.items():
        picked = [i for i, inside in enumerate(member) if inside]
        for label, tally in (("as written", written), ("accent-stripped", stripped)):
            ok = sum(tally.gold[i] == tally.predicted[i] for i in picked)
            by_style.append([name, group, label, len(picked), round(ok / len(picked), 3)])
    return rows, by_style


def config_names(configs: list[Path]) -> list[str]:
    """File stems, with the parent folder added where two configs share a stem."""
    stems = Counter(c.stem for c in configs)
    return [c.stem if stems[c.stem] == 1 else f"{c.parent.name}/{c.stem}" for c in configs]


def summarise(name: str, test_set: str, tally: Tally, train_s: list[float]) -> list[object]:
    from sklearn.metrics import f1_score

    n = len(tally.gold)
    correct = sum(g == p for g, p in zip(tally.gold, tally.predicted, strict=True))
    macro_f1 = f1_score(
        tally.gold,
        tally.predicted,
        labels=sorted(set(tally.gold)),
        average="macro",
        zero_division=0,
    )
    precision = tally.entity_tp / tally.entity_pred if tally.entity_pred else 0.0
    recall = tally.entity_tp / tally.entity_gold if tally.entity_gold else 0.0
    entity_f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return [
        name,
        test_set,
        round(correct / n, 3) if n else "–",
        round(float(macro_f1), 3) if n else "–",
        round(tally.fallbacks / n, 3) if n else "–",
        round(entity_f1, 3) if tally.entity_gold else "–",
        tally.service_accuracy(),
        round(median(tally.parse_ms), 1) if tally.parse_ms else "–",
        round(median(train_s), 1),
    ]


def cross_validate(
    configs: list[Path], folds: int
) -> tuple[list[list[object]], list[tuple[str, str, int]], Tally | None]:
    """Table rows, the top intent confusions (gold, predicted, count) of the first config, and
    the first config's tally on the original texts."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    full = load_training_data()
    messages = [m for m in full.intent_examples if m.get("text")]
    parts = stratified_folds(messages, folds)
    progress(
        f"{len(messages)} examples, {len(full.intents)} intents, {folds} folds, "
        f"{len(configs)} config(s)"
    )
    rows: list[list[object]] = []
    confusions: list[tuple[str, str, int]] = []
    first: Tally | None = None
    for name, config in zip(config_names(configs), configs, strict=True):
        tallies = {test_set: Tally() for test_set in TEST_SETS}
        train_s: list[float] = []
        for k, test_msgs in enumerate(parts, start=1):
            train_msgs = [m for j, part in enumerate(parts, start=1) if j != k for m in part]
            with tempfile.TemporaryDirectory(prefix="bench_nlu_") as tmp:
                progress(f"{name}: fold {k}/{folds}: training on {len(train_msgs)} examples")
                seconds, model = train_fold(config, full, train_msgs, Path(tmp))
                train_s.append(seconds)
                progress(
                    f"{name}: fold {k}/{folds}: trained in {seconds:.1f} s; "
                    f"parsing {len(test_msgs)} examples ×2"
                )
                evaluate_fold(model, test_msgs, tallies)
        rows += [summarise(name, f"cross-validation, {t}", tallies[t], train_s) for t in TEST_SETS]
        if first is None:
            first = original = tallies["original"]
            counts = Counter(
                (g, p) for g, p in zip(original.gold, original.predicted, strict=True) if g != p
            )
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            confusions = [(g, p, c) for (g, p), c in ranked[:10]]
    return rows, confusions, first


def run(configs: list[Path], folds: int) -> list[list[object]]:
    """Cross-validate each config; one row per config × test set (columns as HEADERS)."""
    return cross_validate(configs, folds)[0]


def per_intent_rows(tally: Tally) -> list[list[object]]:
    """Precision, recall, F1 and support of each intent, worst F1 first."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(tally.gold))
    p, r, f, n = precision_recall_fscore_support(
        tally.gold, tally.predicted, labels=labels, zero_division=0
    )
    rows = [
        [label, round(float(pi), 3), round(float(ri), 3), round(float(fi), 3), int(ni)]
        for label, pi, ri, fi, ni in zip(labels, p, r, f, n, strict=True)
    ]
    return sorted(rows, key=lambda row: (row[3], row[0]))


def error_rows(tally: Tally) -> list[list[object]]:
    """Every misclassified example, grouped by (gold, predicted)."""
    errors = zip(tally.gold, tally.predicted, tally.texts, strict=True)
    return sorted([g, p, t] for g, p, t in errors if g != p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        help="pipeline config (repeat to compare; default: BENCH_NLU_CONFIGS or config.yml)",
    )
    folds = int(os.environ.get("BENCH_NLU_FOLDS", "5"))
    parser.add_argument("--folds", type=int, default=folds, help=f"default {folds}")
    parser.add_argument(
        "--report",
        action="store_true",
        help="also print per-intent F1 and the misclassified examples of the first config",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    # bench/run.py calls main() with its own sys.argv, so only read arguments when run directly.
    args = parse_args(argv if argv is not None or __name__ == "__main__" else [])
    configs = args.config
    if not configs:
        env = os.environ.get("BENCH_NLU_CONFIGS", "")
        configs = [Path(p.strip()) for p in env.split(",") if p.strip()] or [DEFAULT_CONFIG]
    configs = [c if c.is_absolute() else Path.cwd() / c for c in configs]
    for config in configs:
        if not config.is_file():
            raise SystemExit(f"config not found: {config}")
    rows, confusions, first = cross_validate(configs, args.folds)
    by_style: list[list[object]] = []
    for name, config in zip(config_names(configs), configs, strict=True):
        independent, styles = independent_set(config, name)
        rows += independent
        by_style += styles
    print_table(
        f"NLU {args.folds}-fold cross-validation by intent ({NLU_DIR.relative_to(ROOT)}/; "
        f"parse = one Agent.parse_message, after {WARMUP} warm-up parses per fold)",
        HEADERS,
        rows,
    )
    print_table(
        f"Independent set ({INDEPENDENT_SET.relative_to(ROOT)}) by part: intent accuracy",
        ["config", "part", "test set", "utterances", "intent acc"],
        by_style,
    )
    print_table(
        f"Top intent confusions of {config_names(configs)[0]} (original texts)",
        ["gold", "predicted", "count"],
        [list(c) for c in confusions] or [["–", "–", 0]],
    )
    if args.report and first is not None:
        name = config_names(configs)[0]
        print_table(
            f"Per-intent scores of {name} (original texts)",
            ["intent", "precision", "recall", "F1", "support"],
            per_intent_rows(first),
        )
        print_table(
            f"Misclassified examples of {name} (original texts)",
            ["gold", "predicted", "text"],
            error_rows(first) or [["–", "–", "–"]],
        )


if __name__ == "__main__":
    main()
