"""Rasa 3.6 spends most of a custom action's overhead checking a schema, not the response.

`RemoteAction._validate_action_result` calls `jsonschema.validate(result, spec)` on every
action server answer; `validate` first checks the (constant) spec against the JSON Schema
meta-schema, which for Rasa's event schema costs ~45 ms of CPU here, against ~3 ms to check
the answer itself (`bench/README.md`, "Conversations under load"). `install()` replaces the
method with one that checks the spec once and keeps the validator; what is accepted and the
error raised for an invalid answer are Rasa's. Installed with the guards when Rasa imports
`connectors.rest` (credentials.yml).
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import best_match
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

_original = RemoteAction._validate_action_result


@functools.lru_cache(maxsize=1)
def _response_validator() -> Any:
    spec = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(spec)
    cls.check_schema(spec)
    return cls(spec)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    error = best_match(_response_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from "
        f"the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> None:
    """Idempotent."""
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


def uninstall() -> None:
    RemoteAction._validate_action_result = _original  # type: ignore[method-assign]
