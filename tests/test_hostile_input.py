"""Hostile input: property tests (hypothesis) on every inbound webhook and on text normalisation.

The webhooks (Zalo, Telegram, SMS) are driven through their real Sanic handlers on a loopback
socket (`tests.fakes.serve_channels`), with the outgoing APIs faked on 127.0.0.1 and a stand-in
for Rasa that echoes what it received. Whatever arrives (random bytes, invalid UTF-8, bodies
around the 64 KiB cap, JSON nested 10,000 deep, wrong JSON types in any field behind a valid
signature or secret, Unicode edge cases, non-ASCII header bytes), the properties are:

- the answer is below 500; a refusal is a 4xx JSON answer with an `error` and a logged reason;
- nothing is logged at ERROR or with a traceback, by the handler or by the background work it
  started (which is waited for): no exception went unhandled;
- the channels still handle a normal message afterwards (checked when the server stops).

The eSMS client's reading of the gateway's answers gets the same treatment. The text functions
(`bot.vietnamese.text`, `bot.vietnamese.vn`, and the NLU helpers that run on raw text) get the
properties that hold
by design for any `str`, lone surrogates, NUL and huge input included.

Examples are derandomised (the same examples on every run, until the test or Hypothesis
changes) and no example database is written: a run is reproducible and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hashlib
import itertools
import json
import logging
import re
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rasa.core.channels.channel import UserMessage
from sqlalchemy.engine import Engine

from bot.delivery.sending import SendError
from bot.delivery.sms import OutboxSmsGateway, to_sms_text
from bot.identity.ratelimit import SenderRateLimit
from bot.vietnamese.dates import find_dates
from bot.vietnamese.lexicon import Lexicon
from bot.vietnamese.text import clean_text, normalize_text
from bot.vietnamese.vn import (
    InvalidValue,
    fold,
    normalize_phone,
    parse_date,
    parse_sex,
    strip_diacritics,
    validate_cccd,
    validate_tax_code,
)
from connectors.common import MAX_BODY, drain
from connectors.rest import REST_METADATA_KEYS, RestInput
from connectors.sms import SECRET_HEADER as SMS_HEADER
from connectors.sms import SmsInput
from connectors.sms_providers import EsmsGateway
from connectors.telegram import SECRET_HEADER as TG_HEADER
from connectors.telegram import TelegramConfig, TelegramInput
from connectors.zalo import SIGNATURE_HEADER, ZaloInput
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeApi, FakeTelegram, FakeZalo, serve_channels, wait_for

# One server serves all the examples of a test: the function-scoped fixture is on purpose.
WEBHOOK = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
TEXT = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ZALO_APP, ZALO_SECRET, ZALO_USER = "2553928453557884079", "oa-secret", "6142494823000000001"
TG_SECRET, TG_CHAT = "tg-secret_1", 5550001
SMS_SECRET = "sms-shared-secret"
REFUSALS = {400, 401, 403, 413, 415}
_update_ids = itertools.count(1)

# --- strategies ------------------------------------------------------------------------------

SPECIAL_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\udc00\ud800",
    "x\udcff",
    "\u200f\u202eabc\u202c",  # RTL mark, right-to-left override, pop
    "\u200b\u200c\u200d\u2060",  # zero-width space, non-joiner, joiner, word joiner
    "\ufeff",
    "\uffff\ufffe",
    "\U0010ffff",
    "a\u0301\u0323\u0302\u0306",  # stacked combining marks
    "\u0301",  # a combining mark on nothing
    "👨\u200d👩\u200d👧\u200d👦",
    "🇻🇳🙏😀",
    "𠀀𝕏𝟘",  # 4-byte UTF-8
    "Đăng ký khai sinh cho con, hoặc luật thuận Huệ",
    unicodedata.normalize("NFD", "Đăng ký khai sinh cho con, hoặc luật thuận Huệ"),
    "hoà khoẻ thuỷ quý",
    "\r\n\t\x0b\x0c\x1b[31m\x7f\x9b",
    "\u2028\u2029\x85",
    '"\\/\b',
    "İ ß ﬁ ǅ",  # case mappings that change the length
    "٠١٢٣٤٥٦٧٨٩ ²³ ৪",  # digits that are not ASCII
    "/restart",
    '/request_service{"service": "khai_sinh"}',
]

any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
hostile_text = st.one_of(
    st.sampled_from(SPECIAL_TEXTS),
    st.text(any_char, max_size=40),
    st.lists(st.sampled_from(SPECIAL_TEXTS) | st.text(any_char, max_size=4), max_size=8).map(
        "".join
    ),
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["á", "thủ tục ", "🙏", "\ud800", "\x00", "e\u0301", "𠀀"]),
        st.integers(1000, 6000),
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**300, -(10**300)]),
    st.floats(),  # NaN and ±Infinity: tokens Python's json writes and reads back
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


@dataclass(frozen=True)
class Deep:
    """A JSON value nested `depth` levels deep, written out only by `encode` (building it as
    Python objects would hit the test's own recursion limit)."""

    depth: int
    kind: str = "list"

    def json(self) -> str:
        opener, closer = ("[", "]") if self.kind == "list" else ('{"a": ', "}")
        return opener * self.depth + '"x"' + closer * self.depth


deep_values = st.builds(
    Deep, st.sampled_from([50, 400, 900, 990]), st.sampled_from(["list", "dict"])
)
field_values = json_values | deep_values
DELETE = object()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if new is DELETE and not rest:
        del value[head]
    else:
        value[head] = _replace(value[head], rest, new)
    return value


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keep: tuple[str, ...] = ()) -> Any:
    """`base` with one to three fields (at any depth, the root included) replaced by a value of
    any type or removed; the top-level fields named in `keep` stay valid."""
    value: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(value) if not (p and p[0] in keep)]
        if not paths or not isinstance(value, dict):
            break
        path = draw(st.sampled_from(paths))
        new = draw(field_values | st.just(DELETE)) if path else draw(field_values)
        value = _replace(value, path, new)
    return value


_DEEP_MARK = re.compile(r'"\\u0000deep:(\d+):(\w+)\\u0000"')


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON as a client sends it: lone surrogates become `\\ud800` escapes (ASCII) or surrogate
    bytes, i.e. invalid UTF-8 (raw)."""
    text = json.dumps(
        value, ensure_ascii=ascii_only, default=lambda d: f"\0deep:{d.depth}:{d.kind}\0"
    )
    text = _DEEP_MARK.sub(lambda m: Deep(int(m.group(1)), m.group(2)).json(), text)
    return text.encode("utf-8", "surrogatepass")


DEEP = [(b"[", b"]"), (b'{"a":', b"}"), (b'{"message":', b"}")]
deep_bodies = st.builds(
    lambda pair, depth: pair[0] * depth + b"1" + pair[1] * depth,
    st.sampled_from(DEEP),
    st.sampled_from([1_000, 10_000, 12_000, 40_000]),  # 40,000 levels are over the cap
)
invalid_utf8 = st.builds(
    lambda before, bad, after: b'{"text": "' + before + bad + after + b'", "id": "u"}',
    st.binary(max_size=8),
    st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]),
    st.binary(max_size=8),
)
odd_json = st.sampled_from(
    [
        b"",
        b"null",
        b"1e999",
        b'"\\ud800"',
        b"NaN",
        b"[]",
        b"\xef\xbb\xbf{}",  # UTF-8 byte order mark
        b"{}" * 3,
        b'{"update_id": ' + b"9" * 5000 + b"}",  # over Python's 4,300-digit int limit
        b'{"a": 1, "a": [}',
        "{}".encode("utf-16"),
    ]
)
raw_bodies = st.one_of(
    st.binary(max_size=600),
    invalid_utf8,
    deep_bodies,
    odd_json,
    st.builds(encode, json_values, st.booleans()),
)
header_bytes = st.lists(
    st.integers(0x21, 0x7E) | st.integers(0x80, 0xFF), min_size=1, max_size=40
).map(bytes)


# --- the server ----------------------------------------------------------------------------


class EchoBot:
    """Stands in for Rasa: records each message and answers with it, so what arrived also goes
    out through the channel's API."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(
            message.sender_id, f"Ông/Bà vừa gửi: {message.text}"
        )


@dataclass
class Served:
    url: str
    client: httpx.AsyncClient
    bot: EchoBot
    caplog: pytest.LogCaptureFixture
    sent: dict[str, int] = field(default_factory=dict)

    async def call(
        self,
        channel: str,
        content: bytes = b"",
        headers: dict[str, Any] | None = None,
        *,
        method: str = "POST",
        query: str = "",
    ) -> httpx.Response:
        """One request; asserts the properties once its background work is done."""
        self.caplog.clear()
        url = f"{self.url}/webhooks/{channel}/webhook" + (f"?{query}" if query else "")
        answer = await self.client.request(method, url, content=content, headers=headers or {})
        await drain()
        check_answer(self.caplog, answer, channel)
        return answer


def check_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at ERROR and no traceback: no exception escaped a handler or background task."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, "\n".join(formatter.format(r)[:3000] for r in problems)


def check_answer(caplog: pytest.LogCaptureFixture, answer: httpx.Response, channel: str) -> None:
    check_no_errors(caplog)
    status = answer.status_code
    assert status < 500, answer.text[:300]
    body = answer.json()
    assert isinstance(body, dict)
    if status >= 400:
        assert status in REFUSALS, status
        assert isinstance(body.get("error"), str) and body["error"]
        logged = [r.getMessage() for r in caplog.records]
        assert any(m.startswith(f"{channel} webhook rejected ({status})") for m in logged)
    else:
        assert status == 200


def zalo_event(text: Any = "xin chào", **fields: Any) -> dict[str, Any]:
    return {
        "app_id": ZALO_APP,
        "user_id_by_app": "979122185046046317",
        "event_name": "user_send_text",
        "sender": {"id": ZALO_USER},
        "recipient": {"id": "3662729599332560487"},
        "message": {"msg_id": uuid.uuid4().hex, "text": text},
        "timestamp": str(int(time.time() * 1000)),
        **fields,
    }


def zalo_headers(raw: bytes, timestamp: str | None = None) -> dict[str, str]:
    """A valid signature over whatever the body is, with the event's own timestamp unless
    one is given (the server takes it from the parsed event)."""
    if timestamp is None:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            event = None
        written = event.get("timestamp") if isinstance(event, dict) else None
        timestamp = str(written) if isinstance(written, (str, int)) else ""
    data = ZALO_APP.encode() + raw + timestamp.encode("utf-8", "surrogatepass")
    mac = hashlib.sha256(data + ZALO_SECRET.encode()).hexdigest()
    return {SIGNATURE_HEADER: f"mac={mac}"}


def tg_message(text: Any = "xin chào", **fields: Any) -> dict[str, Any]:
    return {
        "message_id": 10,
        "date": 1_760_000_000,
        "chat": {"id": TG_CHAT, "type": "private"},
        "from": {"id": TG_CHAT, "is_bot": False, "first_name": "An"},
        "text": text,
        **fields,
    }


TG_UPDATES = [
    {"message": tg_message()},
    {
        "message": tg_message(
            None, contact={"phone_number": "+84905123456", "first_name": "An", "user_id": TG_CHAT}
        )
    },
    {"edited_message": tg_message("sửa", edit_date=1_760_000_001)},
    {
        "callback_query": {
            "id": "cq-1",
            "from": {"id": TG_CHAT, "is_bot": False, "first_name": "An"},
            "chat_instance": "ci",
            "data": "b:AAAAAAAAAAAAAAAA",
            "message": tg_message("Ông/Bà chọn:"),
        }
    },
]
TG_OK = {TG_HEADER: TG_SECRET}
SMS_JSON = {SMS_HEADER: SMS_SECRET, "content-type": "application/json"}


def sms_fields(text: Any = "xin chao") -> dict[str, Any]:
    return {"from": "84905123456", "text": text, "id": uuid.uuid4().hex}


@pytest.fixture
async def served(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    zalo_api, telegram_api = await FakeZalo().start(), await FakeTelegram().start()
    zalo_config = ZaloConfig(
        ZALO_APP,
        "app-secret",
        ZALO_SECRET,
        api_url=zalo_api.url,
        oauth_url=zalo_api.url,
        zns_url=zalo_api.url,
        timeout=2,
    )
    ZaloTokenStore(engine, zalo_config).save("access-0", "refresh-0", 90000)
    # Hundreds of examples come from a few senders: the per-sender limit (tested on its own in
    # tests/test_trust_boundaries.py and tests/test_channel_sms.py) would drop them.
    unlimited = SenderRateLimit(per_minute=0)
    tg_config = TelegramConfig("123:TEST", TG_SECRET, api_url=telegram_api.url)
    channels = [
        ZaloInput(zalo_config, engine, rate_limit=unlimited),
        TelegramInput(tg_config, engine, rate_limit=unlimited),
        SmsInput(
            SMS_SECRET, OutboxSmsGateway(tmp_path / "outbox.jsonl"), engine, rate_limit=unlimited
        ),
    ]
    bot = EchoBot()
    caplog.set_level(logging.WARNING)
    try:
        async with serve_channels(channels, bot) as url, httpx.AsyncClient(timeout=30) as client:
            served = Served(url, client, bot, caplog)
            yield served
            # Still alive: a normal message on every channel reaches the bot and is answered.
            before, zalo_sent, tg_sent = (
                len(bot.messages),
                len(zalo_api.sent),
                len(telegram_api.sent),
            )
            raw = json.dumps(zalo_event("còn đó không")).encode()
            await served.call("zalo", raw, zalo_headers(raw))
            update = {"update_id": next(_update_ids), "message": tg_message("còn đó không")}
            await served.call("telegram", json.dumps(update).encode(), TG_OK)
            await served.call("sms", json.dumps(sms_fields("con do khong")).encode(), SMS_JSON)
            await wait_for(lambda: len(bot.messages) == before + 3)
            assert [m.text for m in bot.messages[before:]] == [
                "còn đó không",
                "còn đó không",
                "con do khong",
            ]
            assert len(zalo_api.sent) > zalo_sent and len(telegram_api.sent) > tg_sent
    finally:
        for channel in channels:
            if hasattr(channel, "close"):
                await channel.close()
        await zalo_api.stop()
        await telegram_api.stop()


# --- webhooks -------------------------------------------------------------------------------
# Few test functions, many examples each: every test starts its own server (on SQLite, then on
# PostgreSQL), and that costs more than a hundred requests.

SMS_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "",
]


@settings(WEBHOOK, max_examples=80)
@given(
    channel=st.sampled_from(["zalo", "telegram", "sms"]),
    body=raw_bodies,
    credential=st.sampled_from(["valid", "valid", "none", "wrong"]) | header_bytes,
    content_type=st.sampled_from(SMS_CONTENT_TYPES),
)
async def test_any_body_with_any_credential(
    served: Served, channel: str, body: bytes, credential: Any, content_type: str
) -> None:
    """Random bytes, invalid UTF-8, JSON nested 10,000 deep, odd JSON; with a valid, missing
    or wrong signature or secret, or a header of arbitrary bytes."""
    header = {"zalo": SIGNATURE_HEADER, "telegram": TG_HEADER, "sms": SMS_HEADER}[channel]
    if credential == "valid":
        headers: dict[str, Any] = {
            "zalo": zalo_headers(body),
            "telegram": TG_OK,
            "sms": {SMS_HEADER: SMS_SECRET},
        }[channel]
    elif credential == "wrong":
        headers = {header: "mac=" + "0" * 64}
    elif credential == "none":
        headers = {}
    else:
        headers = {header: credential}
    if channel == "sms" and content_type:
        headers = {**headers, "content-type": content_type}
    await served.call(channel, body, headers)


@settings(WEBHOOK, max_examples=80)
@given(data=st.data(), ascii_only=st.booleans())
async def test_authenticated_requests_with_fields_of_any_type(
    served: Served, data: st.DataObject, ascii_only: bool
) -> None:
    """A valid request of each kind with one to three fields (at any depth) replaced by a value
    of another type or removed, then properly signed: the parser behind the authentication
    sees it. Mostly the fields the authentication needs stay valid."""
    channel = data.draw(st.sampled_from(["zalo", "telegram", "sms"]))
    if channel == "zalo":
        name = data.draw(st.sampled_from(["user_send_text", "user_send_sticker", "follow"]))
        text = data.draw(hostile_text)
        keep = data.draw(st.sampled_from([("app_id", "timestamp")] * 3 + [()]))
        value = data.draw(mutated(zalo_event(text, event_name=name), keep=keep))
    elif channel == "telegram":
        base = {"update_id": next(_update_ids), **data.draw(st.sampled_from(TG_UPDATES))}
        if "message" in base:
            base["message"]["text"] = data.draw(hostile_text)
        keep = data.draw(st.sampled_from([("update_id",)] * 3 + [()]))
        value = data.draw(mutated(base, keep=keep))
    else:
        names = st.sampled_from(["sender", "phone", "content", "message", "smsid", "message_id"])
        aliases = data.draw(st.dictionaries(names, field_values, max_size=3))
        value = data.draw(mutated({**sms_fields(data.draw(hostile_text)), **aliases}))
    await served.call(channel, *signed_request(channel, value, ascii_only))


@WEBHOOK
@given(
    timestamp=field_values
    | st.text("0123456789", min_size=1, max_size=400)
    | st.sampled_from(["", "-1", "+1", " 1", "1.5", "١٢٣", "0" * 20, str(2**64)]),
    app_id=st.sampled_from([ZALO_APP, int(ZALO_APP), None]) | field_values,
    update_id=field_values,
)
async def test_signed_data_of_any_type(
    served: Served, timestamp: Any, app_id: Any, update_id: Any
) -> None:
    """The fields authentication and deduplication read: Zalo's signed timestamp and app_id
    (signed as written), Telegram's update_id."""
    raw = encode(zalo_event(app_id=app_id, timestamp=timestamp), ascii_only=True)
    as_written = timestamp if isinstance(timestamp, str) else json.dumps(timestamp, default=str)
    await served.call("zalo", raw, zalo_headers(raw, as_written))
    update = {"update_id": update_id, "message": tg_message()}
    await served.call("telegram", encode(update, ascii_only=True), TG_OK)


@WEBHOOK
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["from", "sender", "phone", "text", "content", "id", "smsid", "x"]),
            st.sampled_from(SPECIAL_TEXTS) | st.text(any_char, max_size=40),
        ),
        max_size=6,
    ),
    raw=st.binary(max_size=60),
    secret_in=st.sampled_from(["query", "header", "none"]),
    method=st.sampled_from(["GET", "POST"]),
)
async def test_sms_query_and_form_with_any_values(
    served: Served, pairs: list[tuple[str, str]], raw: bytes, secret_in: str, method: str
) -> None:
    """eSMS calls with GET and the fields in the query; other gateways post a form. Values are
    percent-encoded UTF-8, lone surrogates as the invalid bytes they would be."""
    encoded = urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    query = "&".join(p for p in [encoded, urllib.parse.quote_from_bytes(raw)] if p)
    headers: dict[str, Any] = {SMS_HEADER: SMS_SECRET} if secret_in == "header" else {}
    if secret_in == "query":
        query += f"&secret={SMS_SECRET}"
    if method == "GET":
        await served.call("sms", headers=headers, method="GET", query=query)
    else:
        headers["content-type"] = "application/x-www-form-urlencoded"
        await served.call("sms", query.encode(), headers)


@WEBHOOK
@given(
    channel=st.sampled_from(["zalo", "telegram", "sms"]),
    delta=st.sampled_from([-2, -1, 0, 1, 2, 4096]) | st.integers(-300, 300),
    piece=st.sampled_from(["a", "á", "🙏", "\ud800"]),
)
async def test_bodies_just_under_the_cap_are_read_and_over_it_refused(
    served: Served, channel: str, delta: int, piece: str
) -> None:
    """A valid request padded to MAX_BODY + delta bytes: read when it fits, else 413."""
    if channel == "zalo":
        value: dict[str, Any] = zalo_event("gia hạn tạm trú")
    elif channel == "telegram":
        value = {"update_id": next(_update_ids), "message": tg_message("gia hạn tạm trú")}
    else:
        value = sms_fields("gia han tam tru")
    size = len(json.dumps({**value, "padding": ""}).encode())
    unit = len(json.dumps(piece)) - 2
    value["padding"] = piece * ((MAX_BODY + delta - size) // unit)
    raw = json.dumps(value).encode()
    raw = raw[:-1] + b" " * (MAX_BODY + delta - len(raw)) + b"}"
    assert len(raw) == MAX_BODY + delta
    headers = {"zalo": zalo_headers(raw), "telegram": TG_OK, "sms": SMS_JSON}[channel]
    answer = await served.call(channel, raw, headers)
    assert answer.status_code == (413 if len(raw) > MAX_BODY else 200)


WRONG_VALUES: list[Any] = [
    None,
    2**64,
    "\x00\ud800\u202e",
    [],
    {"id": {"id": None}},
    Deep(990),
    DELETE,
]
SWEPT: list[tuple[str, Any]] = [
    ("zalo", lambda: zalo_event()),
    ("sms", lambda: sms_fields()),
    ("telegram", lambda: {"update_id": next(_update_ids), **copy.deepcopy(TG_UPDATES[0])}),
    ("telegram", lambda: {"update_id": next(_update_ids), **copy.deepcopy(TG_UPDATES[3])}),
]


def signed_request(channel: str, value: Any, ascii_only: bool = True) -> tuple[bytes, dict]:
    raw = encode(value, ascii_only)
    headers = {"zalo": zalo_headers(raw), "telegram": TG_OK, "sms": SMS_JSON}[channel]
    return raw, headers


async def test_every_field_of_every_kind_of_request_with_each_wrong_type(served: Served) -> None:
    """Not sampled: each field at any depth of a Zalo text event, an SMS, a Telegram text
    message and a Telegram button tap, replaced in turn by each value of another type, or
    removed; then a request head over Sanic's 8 KiB limit, which Sanic refuses (413)."""
    requests = 0
    for channel, make in SWEPT:
        for path in [p for p in _paths(make()) if p]:
            for wrong in WRONG_VALUES:
                await served.call(channel, *signed_request(channel, _replace(make(), path, wrong)))
                requests += 1
    assert requests > 300
    query = f"secret={SMS_SECRET}&from=0905123456&id=q&text=" + "%C3%A1" * 3000
    served.caplog.clear()
    answer = await served.client.get(f"{served.url}/webhooks/sms/webhook?{query}")
    assert answer.status_code == 413
    check_no_errors(served.caplog)


# --- the REST channel (credentials.yml: connectors.rest.RestInput) ----------------------------


@pytest.fixture
async def rest(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Served]:
    bot = EchoBot()
    caplog.set_level(logging.WARNING)
    async with (
        serve_channels([RestInput(SenderRateLimit(per_minute=0))], bot) as url,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield Served(url, client, bot, caplog)
        answer = await client.post(
            f"{url}/webhooks/rest/webhook", json={"sender": "an", "message": "còn đó không"}
        )
        assert answer.json() == [
            {"recipient_id": "rest:an", "text": "Ông/Bà vừa gửi: còn đó không"}
        ]


rest_bodies = st.builds(
    encode,
    st.fixed_dictionaries(
        {},
        optional={
            "sender": st.sampled_from(["an", "0905123456"]) | field_values,
            "message": hostile_text | field_values,
            "metadata": field_values,
            "input_channel": field_values,
        },
    ),
    st.booleans(),
)


@settings(WEBHOOK, max_examples=80)
@given(body=raw_bodies | rest_bodies)
async def test_rest_channel_takes_any_body(rest: Served, body: bytes) -> None:
    """Rasa's REST channel (chat front ends, `rasa shell`, integrations; loopback only). A
    message is either handed to the bot as clean text or refused with a 4xx: never a 500,
    never a silent `[]` after a traceback."""
    before = len(rest.bot.messages)
    rest.caplog.clear()
    answer = await rest.client.post(
        f"{rest.url}/webhooks/rest/webhook",
        content=body,
        headers={"content-type": "application/json"},
    )
    await drain()
    check_no_errors(rest.caplog)
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code >= 400:
        assert answer.status_code in REFUSALS and isinstance(answer.json(), dict)
        return
    assert isinstance(answer.json(), list)
    received = rest.bot.messages[before:]
    assert len(received) == 1, "a 200 answer for a message the bot never saw"
    text, sender = received[0].text, received[0].sender_id
    assert text is None or isinstance(text, str)
    (text or "").encode("utf-8")  # encodable: no lone surrogate reaches the NLU
    assert isinstance(sender, str) and sender.encode("utf-8")
    # Whatever the body says, it speaks as REST and asserts nothing (docs/security.md).
    assert sender.startswith("rest:") and received[0].input_channel == "rest"
    assert set(received[0].metadata or {}) <= REST_METADATA_KEYS


# --- the eSMS gateway's answers --------------------------------------------------------------


class FakeEsmsAnswers(FakeApi):
    """Answers every send with whatever the test put in `answer`."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: tuple[int, bytes, str] = (200, b"{}", "application/json")
        self.app.router.add_post(
            "/MainService.svc/json/SendMultipleMessage_V4_post_json/", self.handle
        )

    async def handle(self, request: web.Request) -> web.Response:
        status, body, content_type = self.answer
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})


@pytest.fixture
async def esms() -> AsyncIterator[tuple[FakeEsmsAnswers, EsmsGateway]]:
    fake = await FakeEsmsAnswers().start()
    gateway = EsmsGateway("key", "secret", "DAKLAK", base_url=fake.url, timeout=2)
    yield fake, gateway
    gateway.close()
    await fake.stop()


@WEBHOOK
@given(
    status=st.sampled_from([200, 201, 204, 299, 300, 404, 429, 500, 503]),
    body=raw_bodies
    | st.builds(lambda v: encode({"CodeResult": v, "SMSID": v}, True), field_values),
    content_type=st.sampled_from(["application/json", "text/html; charset=utf-16", "x/y"]),
)
async def test_esms_client_reads_any_answer_as_sent_or_send_error(
    esms: tuple[FakeEsmsAnswers, EsmsGateway], status: int, body: bytes, content_type: str
) -> None:
    fake, gateway = esms
    fake.answer = (status, body, content_type)
    try:
        result = await asyncio.to_thread(gateway.send, "0905123456", "Ma xac thuc 123456", "r-1")
    except SendError as exc:
        assert exc.kind in ("retry", "permanent", "fallback")
    else:
        assert isinstance(result, str)


# --- text normalisation ------------------------------------------------------------------------

VOWELS = "aăâeêioôơuưy"
TONES = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
TONE_SET = set(TONES[1:])
QUALITY_MARKS = {"\u0302", "\u0306", "\u031b"}  # circumflex, breve, horn
VIETNAMESE_LETTERS = sorted(
    {unicodedata.normalize("NFC", v + t) for v in VOWELS + VOWELS.upper() for t in TONES}
    | set("bcdđghklmnpqrstvxBCDĐGHKLMNPQRSTVX")
)
vietnamese = st.text(st.sampled_from([*VIETNAMESE_LETTERS, " ", ",", ".", "?", "1"]), max_size=50)
any_text = st.text(any_char, max_size=200) | hostile_text


def tones(ch: str) -> list[str]:
    return [m for m in unicodedata.normalize("NFD", ch) if m in TONE_SET]


def without_tones(text: str) -> str:
    return "".join(m for m in unicodedata.normalize("NFD", text) if m not in TONE_SET)


def has_quality_mark(ch: str) -> bool:
    return any(m in QUALITY_MARKS for m in unicodedata.normalize("NFD", ch))


@TEXT
@given(any_text)
@example("gia hạn\ud800")  # a lone surrogate used to reach the E5 encoder, which fails on it
def test_normalize_text_takes_any_string(text: str) -> None:
    """Total, valid Unicode out (every later stage encodes it as UTF-8), idempotent, blind to
    NFC/NFD, and as long as the NFC input (entity offsets stay valid)."""
    out = normalize_text(text)
    out.encode("utf-8")
    assert normalize_text(out) == out
    assert normalize_text(unicodedata.normalize("NFD", text)) == out
    assert len(out) == len(unicodedata.normalize("NFC", text))
    assert unicodedata.is_normalized("NFC", out)


@TEXT
@given(vietnamese)
@example("hoặc luật thuận Huệ, kỹ thuật, trí tuệ")  # were "họăc lụât thụân Hụê"
def test_normalize_text_only_moves_tones_and_never_off_a_marked_vowel(text: str) -> None:
    """Only the tone of an open oa/oe/uy syllable moves; a vowel with its own mark (ă â ê ô ơ
    ư) keeps its tone: "hoặc", "luật", "thuận", "Huệ" stay as they are."""
    text = unicodedata.normalize("NFC", text)
    out = normalize_text(text)
    assert len(out) == len(text)
    assert without_tones(out) == without_tones(text)
    assert sum(len(tones(c)) for c in out) == sum(len(tones(c)) for c in text)
    for before, after in zip(text, out, strict=True):
        if has_quality_mark(before):
            assert after == before


@TEXT
@given(
    onset=st.sampled_from(["", "h", "kh", "th", "ng", "x", "H", "TH"]),
    pair=st.sampled_from(["oa", "oe", "uy", "OA", "Oe", "UY"]),
    tone=st.sampled_from(TONES[1:]),
    after=st.sampled_from(["", " ", ".", " bình", "!"]),
)
def test_both_tone_placements_read_the_same(onset: str, pair: str, tone: str, after: str) -> None:
    old = unicodedata.normalize("NFC", onset + pair[0] + tone + pair[1] + after)
    new = unicodedata.normalize("NFC", onset + pair[0] + pair[1] + tone + after)
    assert normalize_text(old) == normalize_text(new) == old


@TEXT
@given(any_text)
def test_clean_text_is_encodable_same_length_and_idempotent(text: str) -> None:
    out = clean_text(text)
    out.encode("utf-8")
    assert len(out) == len(text) and clean_text(out) == out
    assert "\x00" not in out and not any(
        unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in out
    )


@TEXT
@given(any_text)
def test_strip_diacritics_and_fold_take_any_string(text: str) -> None:
    stripped, folded = strip_diacritics(text), fold(text)
    assert not any(unicodedata.category(c) == "Mn" for c in stripped + folded)
    assert strip_diacritics(stripped) == stripped and fold(folded) == folded
    assert len(folded) <= len(text)  # offsets found in the folded text stay inside the text


@TEXT
@given(vietnamese)
def test_vietnamese_folds_to_ascii_letter_for_letter(text: str) -> None:
    text = unicodedata.normalize("NFC", text)
    stripped, folded = strip_diacritics(text), fold(text)
    assert stripped.isascii() and len(stripped) == len(text)
    assert folded == stripped.lower()
    assert strip_diacritics(normalize_text(text)) == stripped


DIGIT_SCRIPTS = [0x30, 0x660, 0x966, 0xFF10, 0x1D7CE]  # ASCII, Arabic-Indic, Devanagari, …
SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"  # str.isdigit() says yes, int() says no


@st.composite
def lookalike_numbers(draw: st.DrawFn) -> str:
    """A valid phone, ID or tax number with some digits written in another script."""
    digits = draw(st.sampled_from(["0905123456", "02623812345", "066190001234", "0101234567-001"]))
    out = []
    for ch in digits:
        script = draw(st.sampled_from([*DIGIT_SCRIPTS, None]))
        if not ch.isdigit():
            out.append(ch)
        elif script is None:
            out.append(SUPERSCRIPTS[int(ch)])
        else:
            out.append(chr(script + int(ch)))
    return "".join(out)


@TEXT
@given(any_text | st.text("0123456789 +.-()", max_size=20) | lookalike_numbers())
@example("09٠5123456")  # was accepted as a phone number
@example("066²90001234")  # raised a bare ValueError from int("²")
@example("000000000٠")  # was accepted as a tax code
def test_identifiers_are_ascii_digits_or_a_vietnamese_refusal(text: str) -> None:
    """Validators answer with the canonical ASCII value or InvalidValue, nothing else."""
    for validate, pattern in [
        (normalize_phone, r"0[0-9]{9,10}"),
        (validate_cccd, r"[0-9]{12}"),
        (validate_tax_code, r"[0-9]{10}(-?[0-9]{3})?"),
        (parse_sex, r"[MF]"),
    ]:
        try:
            value = validate(text)
        except InvalidValue:
            continue
        assert re.fullmatch(pattern, value, re.ASCII), (validate.__name__, value)
    with contextlib.suppress(InvalidValue):
        assert isinstance(parse_date(text), dt.date)


@TEXT
@given(st.from_regex(r"0[35789][0-9]{8}", fullmatch=True), st.sampled_from(["", " ", ".", "-"]))
def test_mobile_numbers_in_any_common_spelling(digits: str, sep: str) -> None:
    spaced = sep.join([digits[1:4], digits[4:7], digits[7:]])
    for spelling in (digits, "+84" + spaced, "84" + digits[1:], f"({digits[:4]}) {digits[4:]}"):
        assert normalize_phone(spelling) == digits


LEXICON = Lexicon(
    {
        "khai sinh": ("service", "khai_sinh"),
        "gia hạn tạm trú": ("service", "tam_tru_gia_han"),
        "rất hài lòng": ("rating", "5"),
        "hộ chiếu": ("service", "ho_chieu_cap_lai"),
    }
)


@TEXT
@given(any_text | vietnamese, st.sampled_from(["", "gia han tam tru ", "ngày 5/3 ", "khai sinh"]))
def test_nlu_helpers_take_any_string_and_point_inside_it(text: str, known: str) -> None:
    """The rule-based extractors run on the normaliser's output; their spans are offsets
    into that text."""
    normal = normalize_text(text + " " + known)
    for match in [*find_dates(normal, dt.date(2026, 3, 4)), *LEXICON.find(normal)]:
        assert 0 <= match.start < match.end <= len(normal)
    if known == "khai sinh":
        assert any(m.value == "khai_sinh" for m in LEXICON.find(normal))
    sms = to_sms_text(text, 2)
    assert sms.isascii() and len(sms) <= 306 and "\n" not in sms
