"""Custom Rasa NLU components, run through Rasa's own Message/TrainingData/ModelStorage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.vietnamese import (
    AccentStrippedAugmenter,
    BareValueIntent,
    E5SentenceFeaturizer,
    EntityValueNormalizer,
    LexiconEntityExtractor,
    UndertheseaTokenizer,
    VietnameseDateExtractor,
    VietnameseTextNormalizer,
)

CONTEXT = ExecutionContext(GraphSchema({}), "test")


def make(cls, **config):  # type: ignore[no-untyped-def]
    return cls.create({**cls.get_default_config(), **config}, None, None, CONTEXT)


def msg(text: str, intent: str | None = None, entities: list[dict] | None = None) -> Message:
    data = {TEXT: text}
    if intent:
        data[INTENT] = intent
    if entities is not None:
        data[ENTITIES] = entities
    return Message(data=data)


@pytest.mark.parametrize(
    "text",
    [
        "Tôi muốn gia hạn CCCD số 066190001234, sđt 0912.345.678!",
        "gia han tam tru o dau vay",
        "hồ sơ DLK-261120-00042 đến đâu rồi??",
        "  khoảng   trắng  ",
    ],
)
def test_underthesea_tokens_are_slices_of_the_text(text: str) -> None:
    tokens = make(UndertheseaTokenizer).tokenize(msg(text), TEXT)
    assert tokens
    assert all(text[t.start : t.end] == t.text for t in tokens)
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)


def test_word_segmentation_groups_syllables() -> None:
    tokens = make(UndertheseaTokenizer).tokenize(msg("Tôi muốn gia hạn tạm trú"), TEXT)
    assert "gia hạn" in [t.text for t in tokens]


def test_normaliser_rewrites_text_but_keeps_training_offsets() -> None:
    normaliser = make(VietnameseTextNormalizer)
    (message,) = normaliser.process([msg("hoà giải")])
    assert message.get(TEXT) == "hòa giải"
    data = TrainingData([msg("khoẻ", "greet")])
    assert normaliser.process_training_data(data).training_examples[0].get(TEXT) == "khỏe"


def test_augmenter_adds_unaccented_copies_with_the_same_entities() -> None:
    entity = {"entity": "service", "value": "khai_sinh", "start": 9, "end": 18}
    data = TrainingData(
        [msg("tôi muốn khai sinh", "request_service", [entity]), msg("ok", "affirm")]
    )
    out = make(AccentStrippedAugmenter).process_training_data(data)
    texts = {m.get(TEXT): m for m in out.training_examples}
    assert set(texts) == {"tôi muốn khai sinh", "toi muon khai sinh", "ok"}
    copy = texts["toi muon khai sinh"]
    assert copy.get(INTENT) == "request_service"
    assert copy.get(ENTITIES) == [entity]
    assert copy.get(TEXT)[9:18] == "khai sinh"


def test_lexicon_extractor_learns_synonyms_and_persists(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("lexicon")
    config = LexiconEntityExtractor.get_default_config()
    extractor = LexiconEntityExtractor.create(config, storage, resource, CONTEXT)
    ent = {"entity": "service", "value": "gplx_doi", "start": 4, "end": 12}
    rating = {"entity": "rating", "value": "5", "start": 0, "end": 12}
    data = TrainingData(
        [
            msg("đổi bằng lái", "request_service", [ent]),
            msg("rất hài lòng", "rate_service", [rating]),
        ],
        entity_synonyms={"giấy phép lái xe": "gplx_doi", "tuyệt vời": "5", "unrelated": "x"},
    )
    extractor.train(data)
    loaded = LexiconEntityExtractor.load(config, storage, resource, CONTEXT)
    (message,) = loaded.process([msg("gia han giay phep lai xe, tuyet voi, 4 sao")])
    found = [(e["entity"], e["value"]) for e in message.get(ENTITIES)]
    assert found == [("service", "gplx_doi"), ("rating", "5")]  # "4 sao" only once "4" is known
    assert {e["extractor"] for e in message.get(ENTITIES)} == {"LexiconEntityExtractor"}


@pytest.mark.parametrize(
    ("text", "entities", "services"),
    [
        ("cccd sắp hết hạn, cần đổi", [], ["cccd_doi_the"]),
        ("làm hộ chiếu có cần mang cccd không", [], ["ho_chieu_cap_lai"]),
        ("số cccd của tôi là 066190001234", [{"entity": "cccd"}], []),
        ("cmnd cũ hết hạn, muốn chuyển sang căn cước", [], ["cccd_doi_the", "cccd_doi_the"]),
    ],
)
def test_a_quoted_card_does_not_name_the_service(
    tmp_path: Path, text: str, entities: list[dict], services: list[str]
) -> None:
    extractor = LexiconEntityExtractor(
        LexiconEntityExtractor.get_default_config(),
        LocalModelStorage(tmp_path),
        Resource("lexicon"),
        {
            "cccd": ("service", "cccd_doi_the"),
            "cmnd": ("service", "cccd_doi_the"),
            "căn cước": ("service", "cccd_doi_the"),
            "hộ chiếu": ("service", "ho_chieu_cap_lai"),
        },
    )
    (message,) = extractor.process([msg(text, entities=[dict(e) for e in entities])])
    assert [e["value"] for e in message.get(ENTITIES) if e["entity"] == "service"] == services


def test_date_extractor_resolves_relative_to_local_today() -> None:
    (message,) = make(VietnameseDateExtractor).process(
        [msg("nhắc lại ngày mai, hoặc 15 tháng 3 năm 2027")]
    )
    today = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    assert [e["value"] for e in message.get(ENTITIES)] == [
        (today + dt.timedelta(days=1)).isoformat(),
        "2027-03-15",
    ]


def test_value_normaliser_canonicalises_codes_and_numbers() -> None:
    entities = [
        {"entity": "dossier_code", "value": "dlk-261120-00042"},
        {"entity": "phone", "value": "0905.123.456"},
        {"entity": "service", "value": "khai_sinh"},
    ]
    (message,) = make(EntityValueNormalizer).process([msg("x", entities=entities)])
    assert [e["value"] for e in message.get(ENTITIES)] == [
        "DLK-261120-00042",
        "0905123456",
        "khai_sinh",
    ]


def test_e5_featurizer_adds_a_normalised_sentence_vector() -> None:
    featurizer = E5SentenceFeaturizer.create(
        E5SentenceFeaturizer.get_default_config(),
        None,
        None,
        ExecutionContext(GraphSchema({}), "e5"),
    )
    fee, fee_unaccented, weather = featurizer.process(
        [msg("lệ phí làm hộ chiếu"), msg("le phi lam ho chieu"), msg("thời tiết hôm nay")]
    )
    vectors = [m.get_dense_features(TEXT)[1].features[0] for m in (fee, fee_unaccented, weather)]
    assert vectors[0].shape == (384,)
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-3
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])


def test_e5_scale_multiplies_the_vector_and_must_be_positive() -> None:
    context = ExecutionContext(GraphSchema({}), "e5")
    config = {**E5SentenceFeaturizer.get_default_config(), "scale": 10}
    (message,) = E5SentenceFeaturizer.create(config, None, None, context).process(
        [msg("khai sinh")]
    )
    assert abs(float(np.linalg.norm(message.get_dense_features(TEXT)[1].features[0])) - 10) < 1e-2
    with pytest.raises(ValueError, match="scale"):
        E5SentenceFeaturizer.validate_config({"scale": 0})


def code(value: str, start: int, entity: str = "otp") -> dict:
    return {"entity": entity, "value": value, "start": start, "end": start + len(value)}


@pytest.mark.parametrize(
    ("text", "entities", "bare"),
    [
        ("196202", [code("196202", 0)], True),
        (" 196202. ", [code("196202", 1)], True),
        ("066190001234", [code("066190001234", 0, "cccd")], True),
        ("DLK-261120-00042 ?", [code("DLK-261120-00042", 0, "dossier_code")], True),
        ("mã 196202", [code("196202", 3)], False),
        ("196202 không", [code("196202", 0)], False),
        ("196202", [], False),
        ("khai sinh", [{"entity": "service", "value": "khai_sinh", "start": 0, "end": 9}], False),
    ],
)
def test_a_message_of_bare_values_is_inform(text: str, entities: list, bare: bool) -> None:
    ranking = [{"name": "deny", "confidence": 0.54}, {"name": "inform", "confidence": 0.3}]
    message = msg(text, entities=entities)
    message.set(INTENT, ranking[0])
    message.set(INTENT_RANKING_KEY, ranking)
    (message,) = make(BareValueIntent).process([message])
    assert (message.get(INTENT)["name"] == "inform") is bare
    if bare:
        assert message.get(INTENT)["confidence"] == 1.0
        assert [r["name"] for r in message.get(INTENT_RANKING_KEY)] == ["inform", "deny"]


def test_the_lexicon_also_reads_the_shorthand_tokenizers_words(tmp_path: Path) -> None:
    from components.vietnamese import ShorthandTokenizer

    text = "tooi muoons lafm laij hooj chieeus"
    message = msg(text)
    make(ShorthandTokenizer).process([message])
    extractor = LexiconEntityExtractor(
        LexiconEntityExtractor.get_default_config(),
        LocalModelStorage(tmp_path),
        Resource("lexicon"),
        {"làm lại hộ chiếu": ("service", "ho_chieu_cap_lai")},
    )
    (found,) = extractor.process([message])[0].get(ENTITIES)
    assert found["value"] == "ho_chieu_cap_lai"
    assert text[found["start"] : found["end"]] == "lafm laij hooj chieeus"
