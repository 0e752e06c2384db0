"""Procedure answers end with their source, through the REST channel of running servers.

Issue 19, item 5: the last line of a fee or documents answer names the legal basis, and the
national procedure code and portal page when the catalogue has them (never an invented one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.catalogue.model import load_catalogue
from bot.catalogue.procedures import answer, source_line
from bot.core.config import PROJECT_ROOT
from tests.model.server import Servers, seeded_servers

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
# The action server reads the project's catalogue, so the expected texts come from it too.
CATALOGUE = load_catalogue(PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml")


def seed(s: Session) -> None:
    """Procedure questions need no citizen: anonymous senders get the same answers."""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Servers]:
    yield from seeded_servers(tmp_path_factory.mktemp("answer_sources"), sqlite_template, seed)


@pytest.mark.parametrize(
    ("sender", "text", "code", "topic"),
    [
        ("src-1", "làm hộ chiếu hết bao nhiêu tiền", "ho_chieu_cap_lai", "fee"),
        ("src-2", "khai sinh cần giấy tờ gì", "khai_sinh", "requirements"),
    ],
)
def test_the_answer_ends_with_its_source(
    servers: Servers, sender: str, text: str, code: str, topic: str
) -> None:
    service = CATALOGUE.service(code)
    reply = servers.say(sender, text)
    line = source_line(service)

    assert answer(service, topic) in reply
    assert reply.rstrip().splitlines()[-1] == line
    assert all(basis in line for basis in service.legal_basis)
    if service.procedure_code:
        assert f"thủ tục {service.procedure_code}" in line
    else:
        assert line.startswith("Căn cứ pháp lý: ")
        assert not re.search(r"\b\d\.\d{6}\b", line)  # no code the catalogue does not have
    if service.portal_url:
        assert service.portal_url in line
    else:
        assert "http" not in line
