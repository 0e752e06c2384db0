"""The provincial procedure system's HTTP API, as a `bot.dossiers.gateway.DossierGateway`.

`DOSSIER_GATEWAY_URL` switches to it: JSON POST signed with HMAC-SHA256
(`X-Signature: sha256=<hex>` over timestamp + "." + body, key `DOSSIER_GATEWAY_SECRET`), an
`Idempotency-Key` header so retries after a timeout never create a second dossier there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from bot.dossiers.gateway import DossierGateway, EmbeddedGateway, GatewayError, SubmissionPayload
from connectors.signed_http import NoAnswer, Refused, SignedPoster


class HttpGateway(SignedPoster):
    """POSTs to the provincial system; retries timeouts and 5xx, never 4xx."""

    what = "dossier gateway"

    def submit(self, payload: SubmissionPayload) -> None:
        body = json.dumps(asdict(payload), ensure_ascii=False, sort_keys=True).encode()
        try:
            self.post(body, payload.idempotency_key)
        except (Refused, NoAnswer) as exc:
            raise GatewayError(str(exc)) from exc


def gateway_from_env() -> DossierGateway:
    url = os.environ.get("DOSSIER_GATEWAY_URL")
    if not url:
        return EmbeddedGateway()
    secret = os.environ.get("DOSSIER_GATEWAY_SECRET")
    if not secret:
        raise RuntimeError("DOSSIER_GATEWAY_URL is set but DOSSIER_GATEWAY_SECRET is not")
    return HttpGateway(url, secret)
