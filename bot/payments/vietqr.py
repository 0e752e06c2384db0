"""VietQR: the EMVCo merchant-presented QR code of a NAPAS 247 transfer to an account.

A dossier's fee request carries one of these so that any Vietnamese banking app can pay it: the
code names the collecting bank (its BIN) and account, the amount in VND, and the dossier code as
the purpose of the transaction (field 62/08). Banks copy 62/08 into the transfer description,
which is where reconciliation looks for the dossier code. Everything here is plain data and
pure functions; rendering uses `segno` and nothing else leaves the process.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import segno

# Root fields (EMVCo QRCPS-MPM) and the NAPAS VietQR sub-fields used here.
PAYLOAD_FORMAT = "00"
INITIATION = "01"
MERCHANT_NAPAS = "38"
CURRENCY = "53"
AMOUNT = "54"
COUNTRY = "58"
MERCHANT_NAME = "59"
ADDITIONAL = "62"
CRC = "63"

NAPAS_GUID = "A000000727"
SERVICE_TRANSFER_TO_ACCOUNT = "QRIBFTTA"
FORMAT_VERSION = "01"
DYNAMIC = "12"  # the code carries an amount; "11" (static) would let the payer type one
VND = "704"
VIETNAM = "VN"
PURPOSE = "08"  # in template 62: purpose of transaction, shown as the transfer description

# Templates whose value is itself a list of fields; 38/01 (the beneficiary) nests once more.
TEMPLATES = frozenset({MERCHANT_NAPAS, ADDITIONAL})

_BIN = re.compile(r"[0-9]{6}")
_ACCOUNT = re.compile(r"[0-9A-Za-z]{1,19}")
_REFERENCE = re.compile(r"[A-Z0-9-](?:[A-Z0-9 -]{0,23}[A-Z0-9-])?")
_NAME = re.compile(r"[A-Z0-9.,&()/-](?:[A-Z0-9 .,&()/-]{0,23}[A-Z0-9.,&()/-])?")
_MAX_AMOUNT = 10**13 - 1  # field 54 holds at most 13 characters
_CRC_TAG = CRC + "04"


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0), EMVCo's checksum."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _crc_text(body: str) -> str:
    """The 4 upper-case hex digits that close a payload whose text up to "6304" is `body`."""
    return f"{crc16_ccitt_false(body.encode('ascii')):04X}"


def _tlv(tag: str, value: str) -> str:
    """One field: a 2-digit ID, a 2-digit length counted in characters (all ASCII), the value."""
    if not value.isascii():
        raise ValueError(f"field {tag}: value must be ASCII, got {value!r}")
    if not 1 <= len(value) <= 99:
        raise ValueError(f"field {tag}: value length {len(value)} is outside 1..99")
    return f"{tag}{len(value):02d}{value}"


def _ascii_text(field: str, value: object) -> str:
    """Rejects non-text and accented text first, so the pattern errors below stay about form."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    if not value.isascii():
        raise ValueError(f"{field} must be unaccented ASCII, got {value!r}")
    return value


@dataclass(frozen=True)
class VietQR:
    """A dynamic VietQR code for one transfer; invalid values never make an instance."""

    bin: str  # acquirer (collecting bank) BIN, 6 digits, e.g. "970415"
    account: str  # beneficiary / treasury collection account, letters and digits, up to 19
    amount: int  # VND, whole dong
    reference: str  # the dossier code, e.g. "DLK-261120-00042"
    name: str | None = None  # beneficiary name, unaccented upper case

    def __post_init__(self) -> None:
        """Validates here so that a payload can always be built and read back as it was."""
        if not _BIN.fullmatch(_ascii_text("bin", self.bin)):
            raise ValueError(f"bin must be 6 digits, got {self.bin!r}")
        if not _ACCOUNT.fullmatch(_ascii_text("account", self.account)):
            raise ValueError(f"account must be 1 to 19 letters or digits, got {self.account!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError(f"amount must be a whole number of VND, got {self.amount!r}")
        if not 0 < self.amount <= _MAX_AMOUNT:
            raise ValueError(f"amount must be between 1 and {_MAX_AMOUNT} VND, got {self.amount}")
        if not _REFERENCE.fullmatch(_ascii_text("reference", self.reference)):
            raise ValueError(
                "reference must be 1 to 25 of A-Z, 0-9, space and '-', not starting or ending"
                f" with a space, got {self.reference!r}"
            )
        if self.name is not None and not _NAME.fullmatch(_ascii_text("name", self.name)):
            raise ValueError(
                "name must be 1 to 25 of A-Z, 0-9, space and . , & ( ) / -, not starting or"
                f" ending with a space, got {self.name!r}"
            )

    def payload(self) -> str:
        """The EMVCo text that the QR code encodes, closed by its CRC."""
        beneficiary = _tlv("00", self.bin) + _tlv("01", self.account)
        merchant = (
            _tlv("00", NAPAS_GUID)
            + _tlv("01", beneficiary)
            + _tlv("02", SERVICE_TRANSFER_TO_ACCOUNT)
        )
        fields = [
            _tlv(PAYLOAD_FORMAT, FORMAT_VERSION),
            _tlv(INITIATION, DYNAMIC),
            _tlv(MERCHANT_NAPAS, merchant),
            _tlv(CURRENCY, VND),
            _tlv(AMOUNT, str(self.amount)),
            _tlv(COUNTRY, VIETNAM),
        ]
        if self.name is not None:
            fields.append(_tlv(MERCHANT_NAME, self.name))
        fields.append(_tlv(ADDITIONAL, _tlv(PURPOSE, self.reference)))
        body = "".join(fields) + _CRC_TAG
        return body + _crc_text(body)

    def png(self, scale: int = 8) -> bytes:
        """The QR code as PNG bytes (error correction M, 4-module quiet zone), built in memory."""
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive whole number, got {scale!r}")
        code = segno.make_qr(self.payload(), error="m", boost_error=False)
        out = io.BytesIO()
        code.save(out, kind="png", scale=scale, border=4)
        return out.getvalue()

    @classmethod
    def from_payload(cls, payload: str) -> VietQR:
        """Reads back a payload of this kind; anything it could not rebuild exactly is refused,
        so that no field is silently dropped."""
        fields = parse(payload)
        merchant = _template(fields, MERCHANT_NAPAS)
        if merchant.get("00") != NAPAS_GUID:
            raise ValueError(f"not a NAPAS code: 38/00 is {merchant.get('00')!r}")
        if merchant.get("02") != SERVICE_TRANSFER_TO_ACCOUNT:
            raise ValueError(f"not a transfer to an account: 38/02 is {merchant.get('02')!r}")
        beneficiary = _template(merchant, "01")
        additional = _template(fields, ADDITIONAL)
        expected = {
            PAYLOAD_FORMAT: FORMAT_VERSION,
            INITIATION: DYNAMIC,
            CURRENCY: VND,
            COUNTRY: VIETNAM,
        }
        for tag, value in expected.items():
            if fields.get(tag) != value:
                raise ValueError(f"field {tag} must be {value!r}, got {fields.get(tag)!r}")
        _only(fields, {*expected, MERCHANT_NAPAS, AMOUNT, MERCHANT_NAME, ADDITIONAL, CRC}, "")
        _only(merchant, {"00", "01", "02"}, "38/")
        _only(beneficiary, {"00", "01"}, "38/01/")
        _only(additional, {PURPOSE}, "62/")
        amount = _text(fields, AMOUNT)
        if not amount.isdigit() or amount.startswith("0"):
            raise ValueError(f"field 54 must be a whole number of VND, got {amount!r}")
        name = fields.get(MERCHANT_NAME)
        return cls(
            bin=_text(beneficiary, "00"),
            account=_text(beneficiary, "01"),
            amount=int(amount),
            reference=_text(additional, PURPOSE),
            name=None if name is None else _text(fields, MERCHANT_NAME),
        )


def _text(fields: dict[str, object], tag: str) -> str:
    """A plain field that must be there."""
    value = fields.get(tag)
    if not isinstance(value, str):
        raise ValueError(f"field {tag} is missing")
    return value


def _template(fields: dict[str, object], tag: str) -> dict[str, object]:
    """A nested field list that must be there."""
    value = fields.get(tag)
    if not isinstance(value, dict):
        raise ValueError(f"template {tag} is missing")
    return value


def _only(fields: dict[str, object], allowed: set[str], where: str) -> None:
    """Refuses fields that VietQR does not carry, rather than dropping them."""
    extra = sorted(set(fields) - allowed)
    if extra:
        raise ValueError(f"unsupported field(s) {', '.join(where + t for t in extra)}")


def _fields(text: str, where: str) -> dict[str, object]:
    """Splits one level of ID-length-value fields; templates (38, 38/01, 62) recurse."""
    out: dict[str, object] = {}
    pos = 0
    while pos < len(text):
        if pos + 4 > len(text):
            raise ValueError(f"truncated field header at {where}offset {pos}: {text[pos:]!r}")
        tag, length = text[pos : pos + 2], text[pos + 2 : pos + 4]
        if not (tag.isascii() and tag.isdigit()):
            raise ValueError(f"field ID {where}{tag!r} at offset {pos} is not 2 digits")
        if not (length.isascii() and length.isdigit()):
            raise ValueError(f"field {where}{tag}: length {length!r} is not 2 digits")
        size = int(length)
        if size == 0:
            raise ValueError(f"field {where}{tag} is empty")
        value = text[pos + 4 : pos + 4 + size]
        if len(value) < size:
            raise ValueError(f"field {where}{tag} is truncated: {len(value)} of {size} characters")
        if tag in out:
            raise ValueError(f"field {where}{tag} appears twice")
        nested = (not where and tag in TEMPLATES) or (where == "38/" and tag == "01")
        out[tag] = _fields(value, f"{where}{tag}/") if nested else value
        pos += 4 + size
    return out


def parse(payload: str) -> dict[str, object]:
    """Reads an EMVCo payload strictly: the CRC must match and every field must be whole.

    Templates 38 (with its beneficiary 38/01) and 62 come back as nested dicts; the CRC stays
    in the result under "63".
    """
    if not isinstance(payload, str):
        raise ValueError(f"payload must be a string, got {type(payload).__name__}")
    if not payload.isascii():
        raise ValueError("payload must be ASCII")
    if len(payload) < 8 or payload[-8:-4] != _CRC_TAG:
        raise ValueError("payload does not end with a CRC field (6304 and 4 hex digits)")
    given = payload[-4:]
    if not re.fullmatch(r"[0-9A-Fa-f]{4}", given):
        raise ValueError(f"CRC {given!r} is not 4 hex digits")
    expected = _crc_text(payload[:-4])
    if given.upper() != expected:
        raise ValueError(f"bad CRC: payload says {given}, content gives {expected}")
    fields = _fields(payload, "")
    if next(iter(fields)) != PAYLOAD_FORMAT or fields[PAYLOAD_FORMAT] != FORMAT_VERSION:
        raise ValueError("payload must start with the format indicator 000201")
    if list(fields)[-1] != CRC or fields[CRC] != given:
        raise ValueError("the CRC field must be the last one, and only there")
    return fields
