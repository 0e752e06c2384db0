"""Every change the project makes to Rasa's and rasa_sdk's own code, in one place.

Rasa 3.6 has no hooks for what `connectors.guard` (an unreachable action server or tracker
store), `connectors.rasa_speedups` (NLU off the event loop, kept connections, the cached
answer check) and `connectors.action_auth` (the action server's token) need, so they replace
a few of its functions. They are installed explicitly by the process entry point
(`scripts/rasa_process.py`), never as a side effect of importing a module, and only on the
Rasa they were written against: another version refuses to start rather than run with
patches whose targets may have changed. `PATCHED` lists every replaced attribute; a test
checks each one.
"""

from __future__ import annotations

import importlib.metadata

SUPPORTED_SERIES = "3.6."

# (module, attribute path) of every attribute the project replaces.
PATCHED: tuple[tuple[str, str], ...] = (
    ("rasa.core.actions.action", "RemoteAction.run"),
    ("rasa.core.actions.action", "RemoteAction._validate_action_result"),
    ("rasa.core.processor", "MessageProcessor._run_action"),
    ("rasa.core.processor", "MessageProcessor.parse_message"),
    ("rasa.core.tracker_store", "FailSafeTrackerStore.on_tracker_store_error"),
    ("rasa.core.tracker_store", "FailSafeTrackerStore.on_tracker_store_retrieve_error"),
    ("rasa.core.tracker_store", "create_engine_kwargs"),
    ("rasa.utils.endpoints", "EndpointConfig.session"),
    ("rasa_sdk.endpoint", "create_app"),
)


class UnsupportedRasa(SystemExit):
    pass


def check_versions() -> None:
    """Refuse to start on a Rasa or rasa_sdk outside the 3.6 series."""
    for package in ("rasa", "rasa-sdk"):
        version = importlib.metadata.version(package)
        if not version.startswith(SUPPORTED_SERIES):
            raise UnsupportedRasa(
                f"{package} {version} is installed; this project patches {package} "
                f"{SUPPORTED_SERIES}x only (connectors/patches.py)"
            )


def install_rasa_server() -> None:
    """What a Rasa server (or `rasa shell`) runs with; before the agent is loaded."""
    check_versions()
    from connectors import guard, rasa_speedups

    guard.install()
    rasa_speedups.install()


def install_action_server() -> None:
    check_versions()
    from connectors import action_auth

    action_auth.install_on_action_server()
