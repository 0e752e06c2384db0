"""Which address a request came from, when a reverse proxy may stand in front of us.

A proxy's `X-Real-IP` header is believed only when the TCP peer is one of the configured
trusted proxies; by default there are none, so on a development machine (`make run`) every
local client is seen as the address it connects from and cannot choose another for
throttling, allow-lists or the audit log. `deploy/env.example` names the local nginx.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

REAL_IP_HEADER = "X-Real-IP"


def parse_trusted(value: str | None) -> frozenset[str]:
    """`"127.0.0.1, ::1"` → the set of addresses (blank entries dropped)."""
    return frozenset(p.strip() for p in (value or "").split(",")) - {""}


def client_address(peer: str | None, real_ip: str | None, trusted: Collection[str]) -> str:
    """The peer, or the valid IP a trusted proxy put in `X-Real-IP`."""
    peer = peer or "?"
    forwarded = (real_ip or "").strip()
    if peer in trusted and forwarded:
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return peer
