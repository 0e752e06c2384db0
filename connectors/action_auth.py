"""The action server answers only the project's Rasa servers.

The action server runs citizen actions for whatever tracker it is sent, and a tracker names its
sender: anyone able to post one could read the data of any bound citizen. So every call must
carry `X-Action-Token`, a key derived from APP_SECRET_KEY (which every process of a deployment
shares already, so nothing more is configured). The Rasa servers send it from endpoints.yml
(`headers: X-Action-Token: ${ACTION_SERVER_TOKEN}`; `scripts/rasa_process.py` puts the value in
the environment); the action server refuses a call without it (401) before reading the body.
rasa_sdk's answer carries `Access-Control-Allow-Origin: *`, so without the token a web page
open in a developer's browser could otherwise read the answers of a local `make run`.
`/health` stays open for load balancers and process managers. A body over Sanic's limit
(scripts/rasa_process.py) is answered 413, where rasa_sdk's catch-all handler would say 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from typing import Any

from sanic import Sanic, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.identity.linking import secret_key

logger = logging.getLogger(__name__)

HEADER = "X-Action-Token"
ENV = "ACTION_SERVER_TOKEN"
OPEN_PATHS = ("/health",)


def action_server_token() -> str:
    return hmac.new(secret_key(), b"action-server", hashlib.sha256).hexdigest()


def export_token() -> None:
    """Put the token where endpoints.yml's `${ACTION_SERVER_TOKEN}` finds it."""
    os.environ[ENV] = action_server_token()


def require_token(app: Sanic, token: str) -> None:
    @app.on_request
    async def authenticated(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        given = request.headers.get(HEADER, "")
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
            return None
        logger.warning("action server call to %s refused: missing or wrong token", request.path)
        return response.json({"error": "unauthorized"}, status=401)


async def _too_large(request: Request, exc: Exception) -> HTTPResponse:
    logger.warning("action server call to %s refused: %s", request.path, exc)
    return response.json({"error": "request body too large"}, status=413)


def install_on_action_server() -> None:
    """Make rasa_sdk's `create_app` (called by `rasa run actions`) add the checks
    (`connectors.patches.install_action_server`; idempotent)."""
    from rasa_sdk import endpoint

    original = endpoint.create_app
    if getattr(original, "checks_action_token", False):
        return
    token = action_server_token()

    def create_app(*args: Any, **kwargs: Any) -> Sanic:
        app = original(*args, **kwargs)
        require_token(app, token)
        app.error_handler.add(PayloadTooLarge, _too_large)
        return app

    create_app.checks_action_token = True  # type: ignore[attr-defined]
    create_app.original = original  # type: ignore[attr-defined]
    endpoint.create_app = create_app


def uninstall_from_action_server() -> None:
    """Restore rasa_sdk's own `create_app` (tests)."""
    from rasa_sdk import endpoint

    endpoint.create_app = getattr(endpoint.create_app, "original", endpoint.create_app)
