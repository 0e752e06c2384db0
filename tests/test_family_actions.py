"""A parent's actions for a minor child, with a real Tracker and a real SQLite database (no
Rasa server): what is due for the family, preparing and submitting for the child, and nothing
of the child for anyone else, whatever the payload says."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction
from sqlalchemy import func, select

from actions.account import ActionCheckStatus, ActionListDue
from actions.dossiers import (
    ActionAskConfirmation,
    ActionFinishDossier,
    ActionRequestService,
    child_payload,
)
from bot.core.db import unit_of_work
from bot.core.models import Consent, Dossier, DossierDraft, ParentChild
from bot.identity.linking import bind
from bot.vietnamese.vn import add_years
from tests import factories
from tests.test_citizen_actions import ent, form_turn, run, texts, tracker

MOTHER, CHILD, ADULT, STRANGER = "066185001111", "066212001234", "066300005555", "066090003333"
CHILD_NAME, ADULT_NAME = "Nguyễn Văn Bé", "Nguyễn Thị Lớn"


@pytest.fixture
def family(actions_db: Path) -> dict[str, int]:
    """A mother (linked as u1) of a 12-year-old whose passport expires in 40 days and of an
    adult daughter whose passport expires too; a stranger linked as u2."""
    today = dt.date.today()
    with unit_of_work() as s:
        mother = factories.citizen(
            s,
            MOTHER,
            "0905111111",
            full_name="Trần Thị Mai",
            sex="F",
            date_of_birth=dt.date(1985, 3, 2),
        )
        child = factories.citizen(
            s, CHILD, None, full_name=CHILD_NAME, date_of_birth=add_years(today, -12)
        )
        adult = factories.citizen(
            s,
            ADULT,
            "0905555555",
            full_name=ADULT_NAME,
            sex="F",
            date_of_birth=add_years(today, -20),
        )
        stranger = factories.citizen(s, STRANGER, "0905333333", full_name="Lê Văn Khách")
        for person in (child, adult):
            factories.record(
                s,
                person,
                "ho_chieu",
                number=f"P-{person.cccd}",
                issued_on=today - dt.timedelta(days=1800),
                valid_until=today + dt.timedelta(days=40),
            )
        s.add_all(
            [
                ParentChild(parent_id=mother.id, child_id=child.id, relation="me"),
                ParentChild(parent_id=mother.id, child_id=adult.id, relation="me"),
            ]
        )
        bind(s, "rest", "u1", mother, "otp")
        bind(s, "rest", "u2", stranger, "otp")
        return {"mother": mother.id, "child": child.id, "adult": adult.id, "stranger": stranger.id}


def _payload(service: str, **entities: str) -> str:
    return "/request_service" + json.dumps({"service": service, **entities})


def _request(text: str, sender: str = "u1", **entities: str):  # type: ignore[no-untyped-def]
    """A button message as Rasa hands it to the action: the payload as text, and only the
    entities the model's domain declares (it drops `child`)."""
    return run(
        ActionRequestService(),
        tracker(text, "request_service", [ent(k, v) for k, v in entities.items()], sender=sender),
    )


def _drafts() -> list[tuple[int, str]]:
    with unit_of_work() as s:
        return list(s.execute(select(DossierDraft.citizen_id, DossierDraft.state)).all())


def test_the_list_names_the_childs_items_with_a_button_to_prepare(family: dict[str, int]) -> None:
    messages, _ = run(ActionListDue(), tracker("tôi có giấy tờ nào sắp hết hạn", "list_due"))
    text = texts(messages)
    year = add_years(dt.date.today(), -12).year
    assert text.startswith("Trong 12 tháng tới Ông/Bà không có giấy tờ nào đến hạn")
    assert f"Con {CHILD_NAME} (sinh {year}):\n• Cấp lại hộ chiếu phổ thông: hạn" in text
    assert ADULT_NAME not in text  # an adult child is not shown
    assert messages[0]["buttons"] == [
        {
            "title": "Làm hồ sơ làm lại hộ chiếu cho con Bé",
            "payload": child_payload("ho_chieu_cap_lai", family["child"]),
        }
    ]


def test_a_parent_prepares_and_submits_for_the_child(family: dict[str, int]) -> None:
    payload = child_payload("ho_chieu_cap_lai", family["child"])
    messages, events = _request(payload, service="ho_chieu_cap_lai")
    said = texts(messages)
    assert f"hạn làm lại hộ chiếu của con {CHILD_NAME} là ngày" in said
    assert f"điền sẵn hồ sơ của con {CHILD_NAME}" in said and "Còn 3 thông tin" in said
    assert FollowupAction("dossier_form") in events
    assert _drafts() == [(family["child"], "open")]
    slots: dict[str, Any] = {"editing_field": None}
    for answer in ("0905111111", "học sinh", "1"):
        _, slots, asked = form_turn(answer, "field_value", slots)
    assert asked == "confirmation"
    messages, _ = run(ActionAskConfirmation(), tracker("", "inform", slots=slots))
    assert f"thay cho con {CHILD_NAME}" in texts(messages) and "066*******34" in texts(messages)
    messages, _ = run(ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}))
    assert "Đã lưu tờ khai làm lại hộ chiếu" in texts(messages)
    with unit_of_work() as s:
        dossier = s.scalar(select(Dossier))
        consent = s.scalar(select(Consent))
        code = dossier.code
        assert dossier.citizen_id == family["child"]
        assert (consent.citizen_id, consent.acting_for_citizen_id) == (
            family["mother"],
            family["child"],
        )
    own, _ = run(ActionCheckStatus(), tracker(code, "inform", [ent("dossier_code", code)]))
    assert code in texts(own)
    listed, _ = run(ActionCheckStatus(), tracker("hồ sơ của tôi", "check_status"))
    assert code in texts(listed)
    other, _ = run(
        ActionCheckStatus(), tracker(code, "inform", [ent("dossier_code", code)], sender="u2")
    )
    assert "Không tìm thấy hồ sơ" in texts(other) and CHILD_NAME not in texts(other)


def test_someone_else_learns_nothing_of_the_child(family: dict[str, int]) -> None:
    child = str(family["child"])
    listed, _ = run(ActionListDue(), tracker("sắp hết hạn", "list_due", sender="u2"))
    crafted, _ = run(
        ActionListDue(),
        tracker(f'/list_due{{"cccd":"{CHILD}"}}', "list_due", [ent("cccd", CHILD)], sender="u2"),
    )
    for messages in (listed, crafted):
        assert CHILD_NAME not in texts(messages) and "Con " not in texts(messages)
        assert all(child not in b["payload"] for b in messages[0].get("buttons") or [])
    # The child's id in the payload (as Rasa passes it today, and as an entity) names nobody.
    for messages, _ in (
        _request(_payload("ho_chieu_cap_lai", child=child), "u2", service="ho_chieu_cap_lai"),
        _request("/request_service", "u2", service="ho_chieu_cap_lai", child=child),
    ):
        assert "không tìm thấy người con này" in texts(messages)
        assert CHILD_NAME not in texts(messages)
    assert _drafts() == []
    # An ID number in the payload is not a way to choose whom the draft is for.
    messages, _ = _request(
        _payload("ho_chieu_cap_lai", cccd=CHILD), "u2", service="ho_chieu_cap_lai", cccd=CHILD
    )
    assert CHILD_NAME not in texts(messages) and "từ dữ liệu của Ông/Bà" in texts(messages)
    assert _drafts() == [(family["stranger"], "open")]


def test_the_parent_cannot_act_for_an_adult_child_or_on_other_services(
    family: dict[str, int],
) -> None:
    messages, _ = _request(
        _payload("ho_chieu_cap_lai", child=str(family["adult"])), service="ho_chieu_cap_lai"
    )
    assert "không tìm thấy người con này" in texts(messages) and ADULT_NAME not in texts(messages)
    messages, _ = _request(
        _payload("ly_lich_tu_phap", child=str(family["child"])), service="ly_lich_tu_phap"
    )
    assert "chưa nộp thay cho con" in texts(messages)
    assert _drafts() == []


def test_anonymous_payload_for_a_child_asks_to_link(family: dict[str, int]) -> None:
    messages, _ = _request(
        _payload("ho_chieu_cap_lai", child=str(family["child"])),
        "nobody",
        service="ho_chieu_cap_lai",
    )
    assert "xác thực" in texts(messages) and CHILD_NAME not in texts(messages)
    assert _drafts() == []


def test_a_draft_for_a_child_is_submitted_only_by_a_parent(family: dict[str, int]) -> None:
    """The stranger's conversation cannot finish a draft that is not theirs or their child's."""
    _request(child_payload("ho_chieu_cap_lai", family["child"]), service="ho_chieu_cap_lai")
    with unit_of_work() as s:
        draft = s.scalar(select(DossierDraft))
        draft.channel_user_id = "u2"  # as if the draft had moved to the stranger's conversation
    messages, _ = run(
        ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}, sender="u2")
    )
    assert "Không còn hồ sơ nháp" in texts(messages)
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Dossier)) == 0
