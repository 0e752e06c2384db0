"""A Redis lock store whose ticket changes are atomic across processes.

Rasa serialises the turns of one conversation with a ticket lock: each message takes the next
ticket and waits until it is the first one. Rasa Open Source's `RedisLockStore` keeps the
ticket queue as one JSON value and changes it by reading, editing and writing it back, so two
Rasa processes that take a ticket at the same moment can both get the same number (one write
overwrites the other) and process two turns of one conversation at once. The SQL tracker store
then keeps only part of the two turns' events: a citizen message is lost without any error
(measured: README, "Deployment on several processes / machines").

Here every change of the queue runs in a Redis WATCH/MULTI transaction, retried when another
process changed the queue in between; the queue is deleted when its last ticket leaves, and
expires on its own if the processes holding it die. Configured in `endpoints.yml` with the
options of Rasa's RedisLockStore, or with one Redis URL (`redis://[:password@]host[:port][/db]`,
`rediss://` for TLS; URL-encode special characters in the password):

    lock_store:
      type: connectors.lock_store.AtomicRedisLockStore
      url: ${REDIS_URL}
      key_prefix: ${REDIS_KEY_PREFIX}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

T = TypeVar("T")

# Seconds between two looks at the queue while a turn of the same conversation runs elsewhere
# (Rasa's default is 1 s, which adds up to a second to every queued message).
POLL_SECONDS = 0.1


def redis_url_options(url: str) -> dict[str, Any]:
    """`redis://user:password@host:6379/1` as RedisLockStore's keyword arguments."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// or rediss:// URL: {parts.scheme}://…")
    options: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "db": int(parts.path.strip("/") or 0),
        "use_ssl": parts.scheme == "rediss",
    }
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    return options


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's Redis ticket lock with each read-modify-write done as one transaction."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        """Rasa builds a custom lock store with `endpoint_config=`; tests pass keywords."""
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        if "://" in str(kwargs.get("host", "")):
            kwargs = {**kwargs, **redis_url_options(kwargs["host"])}
        super().__init__(**kwargs)

    def _change(
        self, conversation_id: str, edit: Callable[[TicketLock], T], create: bool = False
    ) -> T | None:
        """Apply `edit` to the stored queue (a new one if `create`) and store the result, as one
        transaction: WATCH the key, read, edit, MULTI/EXEC; redone if another process wrote the
        key in between. A queue without tickets is deleted; none stored and not `create`: None."""
        key = self.key_prefix + conversation_id

        def transaction(pipe: Any) -> T | None:
            raw = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            if lock is None and create:
                lock = self.create_lock(conversation_id)
            result = edit(lock) if lock is not None else None
            pipe.multi()
            if lock is not None:
                lock.remove_expired_tickets()
                if lock.tickets:
                    # The key outlives its last ticket by a second: a dead process leaves nothing.
                    ttl = math.ceil(max(t.expires for t in lock.tickets) - time.time()) + 1
                    pipe.set(key, lock.dumps(), ex=max(ttl, 1))
                else:
                    pipe.delete(key)
            return result

        return self.red.transaction(transaction, key, value_from_callable=True)

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            ticket = self._change(
                conversation_id, lambda lock: lock.issue_ticket(lock_lifetime), create=True
            )
        except Exception as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc
        assert ticket is not None
        return ticket

    def update_lock(self, conversation_id: str) -> None:
        """Drop expired tickets (those of a process that died while holding or waiting)."""
        self._change(conversation_id, lambda lock: None)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self._change(conversation_id, lambda lock: lock.remove_ticket_for(ticket_number))

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove the ticket; the queue goes with its last ticket, in the same transaction."""
        self.finish_serving(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = POLL_SECONDS,
    ) -> AsyncGenerator[TicketLock, None]:
        async with super().lock(conversation_id, lock_lifetime, wait_time_in_seconds) as lock:
            yield lock
