"""`rasa data validate --fail-on-warning`, with one deliberate exception.

Intents starting with EXTERNAL_ are triggered only by the system through the API
(`trigger_intent`), so they have no NLU examples; adding some would let typed text reach them.
Everything else is Rasa's own validation, failing on warnings exactly like the CLI.
"""

from __future__ import annotations

from rasa.cli.utils import validate_files
from rasa.shared.importers.importer import TrainingDataImporter
from rasa.validator import Validator

_all_intents = Validator._non_default_intents


def _typed_intents(self: Validator) -> list[str]:
    return [i for i in _all_intents(self) if not i.startswith("EXTERNAL_")]


def main() -> None:
    Validator._non_default_intents = _typed_intents
    importer = TrainingDataImporter.load_from_config("config.yml", "domain.yml", ["nlu", "stories"])
    validate_files(fail_on_warnings=True, max_history=None, importer=importer)
    print("Training data and stories validated (system-only EXTERNAL_ intents need no examples).")


if __name__ == "__main__":
    main()
