"""Rasa's in-memory lock store plus one UDP datagram when a Zalo message's turn is over.

Used only by `bench/bench_load.py` (`lock_store: type: bench.load_signal.TurnSignalLockStore`
in the endpoints.yml it writes). Rasa holds a conversation's lock while it handles a message:
NLU, every action, every reply sent to the output channel and the tracker save. When the lock
is given back, this store sends the conversation id to 127.0.0.1:`signal_port`, so the benchmark
knows that a Zalo turn is complete even when it produced no reply (the baseline without an
action server). Production uses the plain in-memory lock store; the difference is one
non-blocking `sendto` per Zalo message.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from rasa.core.lock_store import InMemoryLockStore


class TurnSignalLockStore(InMemoryLockStore):
    def __init__(self, endpoint_config: Any = None) -> None:
        super().__init__()
        kwargs = getattr(endpoint_config, "kwargs", None) or {}
        port = int(kwargs.get("signal_port", 0))
        self._target = ("127.0.0.1", port) if port else None
        self._prefix = str(kwargs.get("signal_prefix", "zalo:"))
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        super().cleanup(conversation_id, ticket_number)
        if self._target and conversation_id.startswith(self._prefix):
            # A full socket buffer must never break a conversation.
            with contextlib.suppress(OSError):
                self._sock.sendto(conversation_id.encode("utf-8"), self._target)
