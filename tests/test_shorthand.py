"""Shorthand normaliser (bot.vietnamese.shorthand), its table, its tokenizer and the lexicon's
typo tolerance."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.vietnamese.lexicon import Lexicon, within_edits
from bot.vietnamese.shorthand import TABLE, collapse_repeats, decode_telex, expand_text, shorthand
from components.vietnamese import ShorthandTokenizer


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("ko dc a", "không được a"),
        ("lam lai cmnd het bn tien", "lam lai chứng minh nhân dân het bao nhiêu tien"),
        ("xin lltp thi lam ntn", "xin lý lịch tư pháp thi lam như thế nào"),
        ("đc ạaaa", "được ạ"),
        ("dduowcj khoong", "được không"),
        ("mik can j", "mình can gì"),
        ("bao nhieu tien", "bao nhiêu tien"),
        ("đk tạm trú", "đăng ký tạm trú"),
        ("KO", "không"),
    ],
)
def test_shorthand_reads_as_words(typed: str, read: str) -> None:
    assert expand_text(typed) == read


@pytest.mark.parametrize(
    "word", ["google", "facebook", "zoom", "show", "VNeID", "066190001234", "DLK-261120-00042"]
)
def test_words_that_are_not_telex_or_shorthand_stay(word: str) -> None:
    assert shorthand().expand_word(word) == [word]


@pytest.mark.parametrize(
    ("typed", "decoded"),
    [("nguwowif", "người"), ("tieengs", "tiếng"), ("vieecj", "việc"), ("cos", "có"),
     ("thuyeenf", "thuyền"), ("nuwowcs", "nước"), ("ddaau", "đâu")],
)  # fmt: skip
def test_telex_leftovers_decode_to_syllables(typed: str, decoded: str) -> None:
    assert decode_telex(typed) == decoded


def test_repeats_collapse_only_from_three() -> None:
    assert collapse_repeats("okkk") == "ok"
    assert collapse_repeats("xoong") == "xoong"
    assert collapse_repeats("1112") == "1112"


def test_the_table_is_reviewed_data_without_ambiguous_forms() -> None:
    raw = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    forms = {**raw["words"], **raw["documents"]}
    assert {"ko", "dc", "j", "bn", "ntn", "mk", "cccd", "gplx", "lltp", "attp", "hdv"} <= set(forms)
    # Forms that mean two things in a message to us stay out (see the table's header).
    assert not {"tk", "c", "a", "hong"} & set(forms)
    assert all(str(v).strip() and str(k) == str(k).lower() for k, v in forms.items())


@given(st.text(alphabet="abcdđeghiklmnoprstuvxyạảấầẩẫậ0123456789 ", max_size=40))
def test_the_tokenizer_keeps_the_citizens_offsets(text: str) -> None:
    tokenizer = ShorthandTokenizer.create(
        ShorthandTokenizer.get_default_config(), None, None, ExecutionContext(GraphSchema({}), "t")
    )
    tokens = tokenizer.tokenize(Message(data={TEXT: text}), TEXT)
    assert all(0 <= t.start <= t.end <= len(text) for t in tokens)
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)


def test_the_tokenizer_gives_the_expanded_words_on_the_typed_span() -> None:
    tokenizer = ShorthandTokenizer.create(
        ShorthandTokenizer.get_default_config(), None, None, ExecutionContext(GraphSchema({}), "t")
    )
    text = "xin lltp ko"
    tokens = tokenizer.tokenize(Message(data={TEXT: text}), TEXT)
    assert [t.text for t in tokens] == ["xin", "lý", "lịch", "tư", "pháp", "không"]
    assert {text[t.start : t.end] for t in tokens[1:5]} == {"lltp"}


LEXICON = Lexicon(
    {
        "giấy phép khai thác nước dưới đất": ("service", "gp_khai_thac_nuoc"),
        "gia hạn tạm trú": ("service", "tam_tru_gia_han"),
        "khai sinh": ("service", "khai_sinh"),
    }
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("xin giay phep khai thac nuoc duoi dat", "gp_khai_thac_nuoc"),
        ("giay phep khai thac nươc duoj dat het han", "gp_khai_thac_nuoc"),
        ("muon gia han tam truu", "tam_tru_gia_han"),
        ("gia hạn tạm trú", "tam_tru_gia_han"),
    ],
)
def test_long_names_match_with_small_typos(text: str, value: str) -> None:
    assert [m.value for m in LEXICON.find(text)] == [value]


@pytest.mark.parametrize("text", ["tôi muốn gia hạn", "khai sinhh", "giấy phép lái xe", "tam tru"])
def test_typo_tolerance_stays_on_long_forms(text: str) -> None:
    assert LEXICON.find(text) == []


def test_edit_distance_bound() -> None:
    assert within_edits("gia han tam tru", "gia han tam truu", 1)
    assert not within_edits("gia han tam tru", "gia han tam t", 1)
    assert within_edits("", "", 0)


def test_a_quoted_card_is_not_the_service_asked_for() -> None:
    table = shorthand()
    assert table.is_incidental("CCCD") and table.is_incidental("can  cuoc")
    assert not table.is_incidental("đổi cccd")


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        previous = current
    return previous[-1]


@given(st.text("abc ", max_size=10), st.text("abc ", max_size=10), st.integers(0, 3))
def test_the_banded_distance_agrees_with_plain_levenshtein(a: str, b: str, limit: int) -> None:
    assert within_edits(a, b, limit) == (_levenshtein(a, b) <= limit)
