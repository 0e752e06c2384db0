"""The trained model's parse answer carries the contract's entity values (needs `make train`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from rasa.core.agent import Agent

from bot.core.config import PROJECT_ROOT

# Loading a Rasa model emits third-party warnings (TensorFlow, Rasa); they are not ours to fix.
pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
MODEL = PROJECT_ROOT / "models" / "assistant.tar.gz"
NEXT_YEAR = dt.date.today().year + 1


@pytest.fixture(scope="module")
def agent() -> Agent:
    if not Path(MODEL).exists():
        pytest.fail("no trained model: run `make train` (make test does)")
    return Agent.load(str(MODEL))


ENTITY_TABLE = [
    ("tôi muốn làm khai sinh cho con", "service", "khai_sinh"),
    ("gia han tam tru", "service", "tam_tru_gia_han"),
    ("đổi bằng lái xe hết hạn", "service", "gplx_doi"),
    ("doi cccd khi du 25 tuoi", "service", "cccd_doi_the"),
    ("giấy phép bán rượu sắp hết hạn", "service", "gp_ban_le_ruou"),
    ("số cccd của tôi là 066190001234", "cccd", "066190001234"),
    ("sdt 0905123456", "phone", "0905123456"),
    ("mã là 482913", "otp", "482913"),
    ("hồ sơ dlk-261120-00042 đến đâu rồi", "dossier_code", "DLK-261120-00042"),
    ("rút hồ sơ DLK-261130-00011", "otp", None),
    ("rất hài lòng", "rating", "5"),
    ("hài lòng", "rating", "4"),
    ("bình thường", "rating", "3"),
    ("không hài lòng", "rating", "2"),
    ("rất không hài lòng", "rating", "1"),
    ("5 sao", "rating", "5"),
    (f"nhắc lại vào 15 tháng 12 năm {NEXT_YEAR}", "date", f"{NEXT_YEAR}-12-15"),
]


@pytest.mark.parametrize(("text", "entity", "value"), ENTITY_TABLE)
async def test_entity_values(agent: Agent, text: str, entity: str, value: str | None) -> None:
    parsed = await agent.parse_message(text)
    values = [e["value"] for e in parsed["entities"] if e["entity"] == entity]
    assert values == ([value] if value else []), parsed["entities"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("xin chào", "greet"),
        ("dong y", "affirm"),
        ("ko", "deny"),
        ("STOP", "stop_reminders"),
        ("lam ho chieu het bao nhieu tien", "ask_fee"),
        ("hồ sơ của tôi đến đâu rồi", "check_status"),
        ("cho tôi gặp cán bộ", "request_human"),
    ],
)
async def test_intents(agent: Agent, text: str, intent: str) -> None:
    parsed = await agent.parse_message(text)
    assert parsed["intent"]["name"] == intent, parsed["intent_ranking"][:3]
