"""VietQR (bot.payments.vietqr): the CRC, the EMVCo fields one by one, codes issued elsewhere,
the PNG read back by a real decoder (zxing-cpp), the strict parser's refusals, and a property
that any valid request survives payload -> parse / from_payload unchanged."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bot.payments.vietqr import VietQR, crc16_ccitt_false, parse

QR = VietQR(
    bin="970415",
    account="0011001932418",
    amount=1_943_000,
    reference="DLK-261120-00042",
    name="KHO BAC NHA NUOC DAK LAK",
)

# The example of the subiz/vietqr README (Go library): 120,000 VND to VietinBank (970415)
# account 0011001932418 with the description "ung ho lu lut".
PUBLISHED = (
    "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA"
    "530370454061200005802VN62170813ung ho lu lut6304C15C"
)
# A code issued by the payOS gateway (found in a public repository's data dump; its CRC checks):
# 7,000 VND to MB (970422) virtual account VQRQADAIJ5512, description "TL89 100".
PAYOS = (
    "00020101021238570010A000000727012700069704220113VQRQADAIJ55120208QRIBFTTA"
    "5303704540470005802VN62120808TL89 1006304E346"
)


def crc_of(payload: str) -> str:
    return f"{crc16_ccitt_false(payload[:-4].encode('ascii')):04X}"


def assert_fields(fields: dict[str, object], qr: VietQR, payload: str) -> None:
    """Every field of a payload built from `qr`, checked one by one."""
    expected_root = ["00", "01", "38", "53", "54", "58", *(["59"] if qr.name else []), "62", "63"]
    assert list(fields) == expected_root
    assert fields["00"] == "01"
    assert fields["01"] == "12"
    assert fields["38"] == {
        "00": "A000000727",
        "01": {"00": qr.bin, "01": qr.account},
        "02": "QRIBFTTA",
    }
    assert fields["53"] == "704"
    assert fields["54"] == str(qr.amount)
    assert fields["58"] == "VN"
    assert fields.get("59") == qr.name
    assert fields["62"] == {"08": qr.reference}
    assert payload.endswith("6304" + str(fields["63"]))
    assert fields["63"] == crc_of(payload) == payload[-4:]


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_crc_of_published_examples() -> None:
    assert crc_of(PUBLISHED) == "C15C"
    assert crc_of(PAYOS) == "E346"
    assert parse(PUBLISHED)["62"] == {"08": "ung ho lu lut"}


def test_same_transfer_as_the_published_example_encodes_the_same_fields() -> None:
    ours = VietQR(bin="970415", account="0011001932418", amount=120_000, reference="UNG HO")
    shared = PUBLISHED[: PUBLISHED.index("5802VN") + len("5802VN")]
    assert ours.payload().startswith(shared)


def test_payos_code_reads_back_and_rebuilds_byte_for_byte() -> None:
    qr = VietQR.from_payload(PAYOS)
    assert qr == VietQR(bin="970422", account="VQRQADAIJ5512", amount=7000, reference="TL89 100")
    assert qr.payload() == PAYOS


def test_payload_field_by_field() -> None:
    payload = QR.payload()
    assert payload.startswith("000201010212")
    assert "0010A000000727" in payload
    assert "0208QRIBFTTA" in payload
    assert "5303704" + "5407" + "1943000" + "5802VN" in payload
    assert "5924KHO BAC NHA NUOC DAK LAK" in payload
    assert "62200816DLK-261120-00042" in payload
    assert_fields(parse(payload), QR, payload)


def test_payload_without_name_has_no_field_59() -> None:
    qr = dataclasses.replace(QR, name=None)
    payload = qr.payload()
    fields = parse(payload)
    assert "59" not in fields
    assert_fields(fields, qr, payload)


def test_png_decodes_to_the_payload() -> None:
    png = QR.png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(codes) == 1
    code = codes[0]
    assert code.format == zxingcpp.BarcodeFormat.QRCode
    assert code.ec_level == "M"
    assert code.text == QR.payload()
    assert_fields(parse(code.text), QR, code.text)
    assert VietQR.from_payload(code.text) == QR


@pytest.mark.parametrize("scale", [2, 8])
def test_png_has_a_four_module_quiet_zone(scale: int) -> None:
    image = Image.open(io.BytesIO(QR.png(scale=scale)))
    corners = zxingcpp.read_barcodes(image)[0].position
    quiet = 4 * scale
    assert abs(corners.top_left.x - quiet) <= 1
    assert abs(corners.top_left.y - quiet) <= 1
    assert abs(corners.bottom_right.x - (image.size[0] - quiet)) <= 1
    assert abs(corners.bottom_right.y - (image.size[1] - quiet)) <= 1


def test_png_scale_sets_the_size() -> None:
    small = Image.open(io.BytesIO(QR.png(scale=2)))
    large = Image.open(io.BytesIO(QR.png(scale=8)))
    assert large.size == (small.size[0] * 4, small.size[1] * 4)
    with pytest.raises(ValueError, match="scale"):
        QR.png(scale=0)


def test_from_payload_round_trip() -> None:
    assert VietQR.from_payload(QR.payload()) == QR
    plain = VietQR(bin="970436", account="1023456789", amount=1, reference="X")
    assert VietQR.from_payload(plain.payload()) == plain


@pytest.mark.parametrize("index", [0, 7, 30, 60, 95, -5, -1])
def test_a_flipped_character_fails_the_crc(index: int) -> None:
    payload = QR.payload()
    pos = index % len(payload)
    flipped = "1" if payload[pos] != "1" else "2"
    with pytest.raises(ValueError, match="CRC"):
        parse(payload[:pos] + flipped + payload[pos + 1 :])


def with_crc(body: str) -> str:
    """A payload with a correct CRC, to reach the parser's structural checks."""
    body += "6304"
    return body + f"{crc16_ccitt_false(body.encode('ascii')):04X}"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "CRC"),
        ("000201", "CRC"),
        (QR.payload()[:-1], "CRC"),
        (QR.payload()[:-4] + "XYZW", "hex"),
        (with_crc("000201010212" + "5420" + "1000"), "truncated"),
        (with_crc("000201" + "01A212"), "not 2 digits"),
        (with_crc("000201" + "X10212"), "not 2 digits"),
        (with_crc("000201" + "0100"), "empty"),
        (with_crc("000201" + "010212" + "010212"), "twice"),
        (with_crc("010212" + "000201"), "format indicator"),
        (with_crc("000202"), "format indicator"),
        (with_crc("000201" + "38040001"), "truncated"),
        (with_crc("000201" + "6299" + "0801A"), "truncated"),
        (with_crc("000201" + "5912" + "ABCD"), "last"),  # 59 swallows "6304" and the CRC
        ("000201" + "5902Ä6304" + "0000", "ASCII"),
    ],
)
def test_parse_refuses_malformed_payloads(payload: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(payload)


def test_from_payload_refuses_what_is_not_a_napas_transfer() -> None:
    body = QR.payload()[:-8]
    to_card = body.replace("QRIBFTTA", "QRIBFTTC")
    other_guid = body.replace("A000000727", "A000000728")
    static = body.replace("010212", "010211", 1)
    dollars = body.replace("5303704", "5303840")
    for wrong, message in [
        (to_card, "transfer to an account"),
        (other_guid, "NAPAS"),
        (static, "field 01"),
        (dollars, "field 53"),
    ]:
        assert parse(with_crc(wrong))  # well formed, only not a VietQR transfer
        with pytest.raises(ValueError, match=message):
            VietQR.from_payload(with_crc(wrong))


def test_from_payload_refuses_fields_it_would_drop_and_bad_amounts() -> None:
    base = VietQR(bin="970415", account="123", amount=5, reference="R")
    body = base.payload()[:-8]
    with_mcc = body.replace("5303704", "52045999" + "5303704")
    decimals = body.replace("54015", "54045.00")
    no_reference = body[: body.index("6205")]
    for wrong, message in [
        (with_mcc, "unsupported field.*52"),
        (body.replace("62050801R", "62130801R0104BILL"), "unsupported field.*62/01"),
        (decimals, "whole number"),
        (body.replace("54015", "540205"), "whole number"),
        (no_reference, "62 is missing"),
    ]:
        with pytest.raises(ValueError, match=message):
            VietQR.from_payload(with_crc(wrong))
    with pytest.raises(ValueError, match="CRC"):
        VietQR.from_payload(body + "63040000")


def test_parse_reads_other_senders_codes() -> None:
    fields = parse(PUBLISHED)
    assert fields["38"] == {
        "00": "A000000727",
        "01": {"00": "970415", "01": "0011001932418"},
        "02": "QRIBFTTA",
    }
    assert fields["54"] == "120000"
    assert fields["63"] == "C15C"
    with pytest.raises(ValueError, match="reference"):  # lower case: not a dossier code
        VietQR.from_payload(PUBLISHED)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1000}, "amount"),
        ({"amount": 10**13}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 1000.0}, "amount"),
        ({"bin": "97041"}, "bin"),
        ({"bin": "9704155"}, "bin"),
        ({"bin": "97041A"}, "bin"),
        ({"bin": "９７０４１５"}, "bin"),  # full-width digits: not ASCII
        ({"account": ""}, "account"),
        ({"account": "1" * 20}, "account"),
        ({"account": "0011-0019"}, "account"),
        ({"reference": "HỒ SƠ 42"}, "reference"),
        ({"reference": "D" * 26}, "reference"),
        ({"reference": ""}, "reference"),
        ({"reference": "dlk-261120-00042"}, "reference"),
        ({"reference": " DLK-261120-00042"}, "reference"),
        ({"reference": "DLK_261120"}, "reference"),
        ({"name": "Kho bạc"}, "name"),
        ({"name": "KHO BAC NHA NUOC TINH DAK LAK"}, "name"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_values_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(QR, **changes)


def test_accented_text_gets_an_ascii_message() -> None:
    with pytest.raises(ValueError, match="unaccented ASCII"):
        dataclasses.replace(QR, reference="HỒ SƠ 42")


def test_longest_values_are_accepted() -> None:
    qr = VietQR(
        bin="999999",
        account="A" * 19,
        amount=10**13 - 1,
        reference="Z" * 25,
        name="N" * 25,
    )
    payload = qr.payload()
    assert_fields(parse(payload), qr, payload)
    assert VietQR.from_payload(payload) == qr


EDGE = "[A-Z0-9-]"
references = st.from_regex(rf"{EDGE}(?:[A-Z0-9 -]{{0,23}}{EDGE})?", fullmatch=True)
accounts = st.from_regex(r"[0-9A-Za-z]{1,19}", fullmatch=True)
NAME_EDGE = "[A-Z0-9.,&()/-]"
names = st.none() | st.from_regex(
    rf"{NAME_EDGE}(?:[A-Z0-9 .,&()/-]{{0,23}}{NAME_EDGE})?", fullmatch=True
)


@given(
    bin=st.from_regex(r"[0-9]{6}", fullmatch=True),
    account=accounts,
    amount=st.integers(min_value=1, max_value=10**13 - 1),
    reference=references,
    name=names,
)
def test_property_payload_parses_back_to_the_same_values(
    bin: str, account: str, amount: int, reference: str, name: str | None
) -> None:
    qr = VietQR(bin=bin, account=account, amount=amount, reference=reference, name=name)
    payload = qr.payload()
    assert_fields(parse(payload), qr, payload)
    assert VietQR.from_payload(payload) == qr
