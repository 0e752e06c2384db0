"""The cached action-response validator accepts and refuses exactly what Rasa's does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig

from connectors import rasa_speedups

GOOD: list[dict[str, Any]] = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "x", "value": "y", "timestamp": None}]},
    {"responses": [{"text": "Xin chào Ông/Bà"}]},
]
BAD: list[dict[str, Any]] = [
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
]


@pytest.fixture
def action() -> Iterator[RemoteAction]:
    yield RemoteAction("action_x", EndpointConfig("http://127.0.0.1:1/webhook"))
    rasa_speedups.uninstall()


@pytest.mark.parametrize("result", GOOD)
def test_valid_answers_pass_as_with_rasa(action: RemoteAction, result: dict[str, Any]) -> None:
    assert action._validate_action_result(result)
    rasa_speedups.install()
    assert action._validate_action_result(result)


@pytest.mark.parametrize("result", BAD)
def test_invalid_answers_fail_as_with_rasa(action: RemoteAction, result: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as rasa_error:
        action._validate_action_result(result)
    rasa_speedups.install()
    with pytest.raises(ValidationError) as ours:
        action._validate_action_result(result)
    assert ours.value.message == rasa_error.value.message
    assert "Failed to validate Action server response" in ours.value.message
