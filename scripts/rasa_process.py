"""Start a Rasa server or an action server the way every entry point of the project does.

    python scripts/rasa_process.py server [rasa run options]   # the API token from RASA_AUTH_TOKEN
    python scripts/rasa_process.py actions [rasa run actions options]

- The Rasa API token never appears on a command line (where `ps` shows it to every user of
  the machine): it is read from RASA_AUTH_TOKEN, or the file `make run` generated under var/,
  and handed to Rasa inside this process.
- Request bodies are bounded before they are read: Sanic refuses a body over
  RASA_MAX_REQUEST_BYTES (server, default 1 MiB; the channels refuse more than 64 KiB
  themselves) or ACTION_MAX_REQUEST_BYTES (action server, default 16 MiB: Rasa sends it the
  whole conversation) with 413, from its declared length or as it streams in, instead of
  buffering up to Sanic's default of 100 MB.
- Files the process creates (tracker database, logs) are readable by the owner only.
- The action server answers only callers with the action token, which the Rasa server sends
  (`connectors.action_auth`; `make shell` starts `rasa shell` through here too).
- The project's changes to Rasa's code are installed here, and only on Rasa 3.6
  (`connectors.patches`).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.config import rasa_auth_token  # noqa: E402
from connectors import action_auth, patches  # noqa: E402

LIMITS = {
    "server": ("RASA_MAX_REQUEST_BYTES", 1024 * 1024),
    "actions": ("ACTION_MAX_REQUEST_BYTES", 16 * 1024 * 1024),
    "shell": ("RASA_MAX_REQUEST_BYTES", 1024 * 1024),
}


# Libraries under Rasa 3.6 that warn about their own dependencies at import (TensorFlow, JAX,
# pkg_resources, matplotlib/pyparsing, sanic_cors, SQLAlchemy 2.0 notices about Rasa's code).
# Only warnings raised inside these packages are hidden: ours still show.
THIRD_PARTY = r"^(rasa|tensorflow|keras|jax|apscheduler|pkg_resources|matplotlib|sanic_cors)(\.|$)"


def quiet_third_party_warnings() -> None:
    """A tester's `make shell` opens on the conversation, not on a wall of library notices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info and warnings
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")  # about Rasa's 1.x usage
    warnings.filterwarnings("ignore", category=Warning, module=THIRD_PARTY)
    # matplotlib's font code calls pyparsing's old names at import; pyparsing's warnings are
    # UserWarnings, which Rasa later sets to show "once" ahead of any filter set here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import matplotlib.font_manager  # noqa: F401


def rasa_argv(kind: str, options: list[str]) -> list[str]:
    """The argument list `rasa` gets in this process (the token included for a server)."""
    if kind == "server":
        if any(o == "--auth-token" or o.startswith("--auth-token=") for o in options):
            raise SystemExit("pass the token in RASA_AUTH_TOKEN, not on the command line")
        return ["rasa", "run", *options, "--auth-token", rasa_auth_token()]
    if kind == "shell":
        return ["rasa", "shell", *options]
    return ["rasa", "run", "actions", *options]


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in LIMITS:
        raise SystemExit(f"usage: {Path(__file__).name} server|actions|shell [options]")
    kind, options = argv[0], argv[1:]
    variable, default = LIMITS[kind]
    # Sanic reads SANIC_* variables into its configuration when the app is created.
    os.environ["SANIC_REQUEST_MAX_SIZE"] = str(int(os.environ.get(variable, default)))
    os.umask(0o077)
    quiet_third_party_warnings()
    action_auth.export_token()
    if kind == "actions":
        patches.install_action_server()
    else:
        patches.install_rasa_server()
    sys.argv = rasa_argv(kind, options)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main(sys.argv[1:])
