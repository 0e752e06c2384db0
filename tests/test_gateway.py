"""HTTP dossier gateway against a local fake provincial system on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.dossiers.gateway import GatewayError, SubmissionPayload
from connectors.dossier_gateway import HttpGateway
from connectors.signed_http import sign

SECRET = "gateway-secret"


class FakeProvince(ThreadingHTTPServer):
    """Answers with the scripted statuses in order ('timeout' sleeps past the client timeout)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[object] = []
        self.accepted: dict[str, dict] = {}
        self.requests = 0


class Handler(BaseHTTPRequestHandler):
    server: FakeProvince

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1
        step = self.server.script.pop(0) if self.server.script else 200
        if step == "timeout":
            threading.Event().wait(0.5)
            return
        expected = sign(SECRET, self.headers["X-Timestamp"], body)
        if self.headers["X-Signature"] != expected:
            step = 401
        elif step == 200:
            self.server.accepted.setdefault(self.headers["Idempotency-Key"], json.loads(body))
        self.send_response(int(step))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def province() -> Iterator[FakeProvince]:
    server = FakeProvince()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def payload() -> SubmissionPayload:
    return SubmissionPayload(
        code="DLK-261120-00001",
        service_code="tam_tru_gia_han",
        service_name="Gia hạn tạm trú",
        agency="Công an xã",
        idempotency_key="draft:1",
        submitted_at="2026-11-20T02:00:00Z",
        fields={"ho_ten": "Nguyễn Văn An"},
    )


def gateway(province: FakeProvince, secret: str = SECRET) -> HttpGateway:
    url = f"http://127.0.0.1:{province.server_address[1]}/dossiers"
    return HttpGateway(url, secret, timeout=0.2, attempts=3, backoff=0.01)


def test_signed_submission_is_accepted(province: FakeProvince) -> None:
    gateway(province).submit(payload())
    assert province.accepted["draft:1"]["fields"] == {"ho_ten": "Nguyễn Văn An"}


def test_timeout_then_5xx_then_success_delivers_once(province: FakeProvince) -> None:
    province.script = ["timeout", 503]
    gateway(province).submit(payload())
    assert province.requests == 3 and len(province.accepted) == 1


def test_a_4xx_is_not_retried(province: FakeProvince) -> None:
    with pytest.raises(GatewayError, match="401"):
        gateway(province, secret="wrong").submit(payload())
    assert province.requests == 1


def test_gives_up_after_the_configured_attempts(province: FakeProvince) -> None:
    province.script = [500, 502, 503]
    with pytest.raises(GatewayError, match="3 attempts"):
        gateway(province).submit(payload())
    assert province.accepted == {}
