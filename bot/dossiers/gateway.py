"""Where submitted dossiers go: our own database (default, `EmbeddedGateway`) or the
provincial procedure system through any `DossierGateway` (the HTTP client lives with the other
outbound clients: `connectors/dossier_gateway.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from bot.catalogue.model import Service
from bot.core.models import Dossier

log = logging.getLogger(__name__)


class GatewayError(RuntimeError):
    """The procedure system did not accept the dossier; nothing was committed on our side."""


@dataclass(frozen=True)
class SubmissionPayload:
    code: str
    service_code: str
    service_name: str
    agency: str
    idempotency_key: str
    submitted_at: str
    fields: dict[str, Any]

    @classmethod
    def of(cls, dossier: Dossier, service: Service) -> SubmissionPayload:
        return cls(
            code=dossier.code,
            service_code=service.code,
            service_name=service.name,
            agency=service.agency,
            idempotency_key=dossier.idempotency_key or dossier.code,
            submitted_at=dossier.submitted_at.isoformat() + "Z" if dossier.submitted_at else "",
            fields=dossier.fields.get("values", {}),
        )


class DossierGateway(Protocol):
    def submit(self, payload: SubmissionPayload) -> None:
        """Hand the dossier over; raise GatewayError when it was not accepted."""


class EmbeddedGateway:
    """Default: the dossier row we just wrote is the officers' queue; nothing else to do."""

    def submit(self, payload: SubmissionPayload) -> None:
        log.info("dossier %s queued for officers (embedded gateway)", payload.code)
