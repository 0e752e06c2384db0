"""Rasa NLU YAML as the learning loop needs it: the examples of `- intent:` blocks with their
line numbers, the domain's intents, and `nlu/reviewed.yml` written in one step."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.vietnamese.text import normalize_text

REVIEWED_FILE = "reviewed.yml"
REVIEWED_HEADER = """\
# Messages officers flagged as misunderstood in the console ("Học lại"), with the intent they
# meant: exported, reviewed, then merged here by `python -m bot nlu-review FILE`, which checked
# them against domain.yml, the held-out sets of bench/ and the rest of nlu/. ID and phone
# numbers are masked. The command rewrites this file (one block per intent, sorted); to undo
# an example, delete its line.
"""
# `[text](entity)` and `[text]{"entity": …}` annotations, read as their plain text.
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


class NluFileError(ValueError):
    """A file that cannot be read as Rasa NLU YAML; nothing was checked or written."""


@dataclass(frozen=True)
class NluExample:
    """One example of an `- intent:` block: its text as written after the "- ", and the line of
    the file it is on (1-based; the block's line when the examples are not a `|` block)."""

    path: Path
    line: int
    intent: str
    text: str


def plain_text(example: str) -> str:
    """The text Rasa trains on, without entity annotations."""
    return _ANNOTATION.sub(lambda m: m.group(1), example)


def training_key(text: str) -> str:
    """Two examples with the same key are the same training example: case, spacing, NFC/NFD and
    tone placement aside (diacritics count: "hồ sơ" and "ho so" are both trained on)."""
    return " ".join(normalize_text(plain_text(text)).lower().split())


def _load_nodes(path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NluFileError(f"{path}: not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NluFileError(f"{path}: cannot be read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise NluFileError(f"{path}: not valid YAML ({exc})") from exc


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _block_lines(node: yaml.Node) -> Iterator[tuple[int, str]]:
    """(line, item) of each "- item" line of a multi-line examples string, as Rasa reads it."""
    if isinstance(node, yaml.ScalarNode):
        literal = node.style == "|"
        for index, raw in enumerate(str(node.value).splitlines()):
            # A `|` block's content starts on the line after the indicator, one line per line.
            line = node.start_mark.line + 2 + index if literal else node.start_mark.line + 1
            if raw.strip():
                yield line, raw
    elif isinstance(node, yaml.SequenceNode):  # `- text: …` items (examples with metadata)
        for item in node.value:
            text = _mapping(item).get("text")
            if isinstance(text, yaml.ScalarNode):
                yield text.start_mark.line + 1, "- " + str(text.value)


def read_examples(path: Path, *, only_intents: bool = False) -> list[NluExample]:
    """The examples of every `- intent:` block of one NLU file, in file order.

    Other blocks (synonyms, regexes, lookup tables) are skipped, or refused with
    `only_intents=True` (a reviewed export holds intent examples only). A line that does not
    start with "-" is refused (Rasa would skip it with a warning)."""
    root = _load_nodes(path)
    if root is None:
        return []
    blocks = _mapping(root).get("nlu")
    if blocks is None or (isinstance(blocks, yaml.SequenceNode) and not blocks.value):
        return []
    if not isinstance(blocks, yaml.SequenceNode):
        raise NluFileError(f"{path}: `nlu:` must be a list of blocks")
    examples: list[NluExample] = []
    for block in blocks.value:
        fields = _mapping(block)
        intent = fields.get("intent")
        line = block.start_mark.line + 1
        if intent is None:
            if only_intents:
                kinds = ", ".join(sorted(fields)) or "?"
                raise NluFileError(f"{path}, line {line}: only `- intent:` blocks ({kinds})")
            continue
        if not isinstance(intent, yaml.ScalarNode) or "examples" not in fields:
            raise NluFileError(f"{path}, line {line}: an intent block needs a name and examples")
        for number, raw in _block_lines(fields["examples"]):
            if not raw.startswith("-"):
                raise NluFileError(f"{path}, line {number}: an example must start with '- '")
            examples.append(NluExample(path, number, str(intent.value), raw[1:].strip()))
    return examples


def nlu_files(nlu_dir: Path) -> list[Path]:
    return sorted([*nlu_dir.glob("*.yml"), *nlu_dir.glob("*.yaml")])


def training_examples(nlu_dir: Path) -> dict[str, NluExample]:
    """Every intent example of the training data folder, by `training_key` (first one kept)."""
    found: dict[str, NluExample] = {}
    for path in nlu_files(nlu_dir):
        for example in read_examples(path):
            found.setdefault(training_key(example.text), example)
    return found


def domain_intents(domain: Path) -> tuple[str, ...]:
    """The `intents:` of domain.yml (names, or one-key mappings with their options)."""
    try:
        data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise NluFileError(f"{domain}: cannot be read ({exc})") from exc
    items = data.get("intents") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise NluFileError(f"{domain}: no `intents:` list")
    return tuple(str(i if not isinstance(i, dict) else next(iter(i))) for i in items)


def render_reviewed(blocks: Mapping[str, Sequence[str]]) -> str:
    """nlu/reviewed.yml: the header, then one block per intent in name order."""
    lines = [REVIEWED_HEADER.rstrip("\n"), 'version: "3.1"', "", "nlu:"]
    for intent in sorted(blocks):
        if blocks[intent]:
            lines += [f"  - intent: {intent}", "    examples: |"]
            lines += [f"      - {text}" for text in blocks[intent]]
    if lines[-1] == "nlu:":
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"


def merged_reviewed(nlu_dir: Path, additions: Sequence[tuple[str, str]]) -> str:
    """The text of nlu/reviewed.yml once the (intent, example) additions are in: what it holds
    keeps its order, new examples follow in the order given, none twice."""
    blocks: dict[str, list[str]] = {}
    path = nlu_dir / REVIEWED_FILE
    existing = read_examples(path, only_intents=True) if path.exists() else []
    for intent, text in [(e.intent, e.text) for e in existing] + list(additions):
        texts = blocks.setdefault(intent, [])
        if text not in texts:
            texts.append(text)
    rendered = render_reviewed(blocks)
    reread = yaml.safe_load(rendered)  # what Rasa will read must be exactly what we meant
    found = {
        item["intent"]: [ln[1:].strip() for ln in item["examples"].splitlines()]
        for item in reread["nlu"] or []
    }
    if found != {intent: texts for intent, texts in blocks.items() if texts}:
        raise NluFileError(f"{path}: the merged file would not read back as written")
    return rendered


def write_atomically(path: Path, text: str) -> None:
    """Write a temporary file beside `path`, flush it to disk, then rename it over `path`:
    readers (and `make train`) see the old file or the new one, never half of it."""
    # An existing file keeps its mode; a new one gets its folder's, without x (0755 → 0644).
    folder_mode = path.parent.stat().st_mode & 0o666
    mode = path.stat().st_mode & 0o777 if path.exists() else folder_mode
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
