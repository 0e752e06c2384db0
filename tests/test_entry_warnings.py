"""`make shell` and the other Rasa entry points hide the libraries' import-time notices, and
only those: a warning raised in our own code still shows."""

from __future__ import annotations

import subprocess
import sys

from bot.core.config import PROJECT_ROOT

PROBE = """
import sys, warnings
sys.path.insert(0, "scripts")
import rasa_process
rasa_process.quiet_third_party_warnings()
warnings.warn_explicit("library notice", DeprecationWarning, "x.py", 1, module="tensorflow.lite")
warnings.warn_explicit("rasa notice", UserWarning, "y.py", 1, module="rasa.core.tracker_store")
warnings.warn_explicit("our notice", UserWarning, "z.py", 1, module="bot.delivery.deliverer")
"""


def test_third_party_warnings_are_hidden_and_ours_are_not() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", PROBE],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "our notice" in result.stderr
    assert "library notice" not in result.stderr and "rasa notice" not in result.stderr
