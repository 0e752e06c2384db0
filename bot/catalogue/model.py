"""The service catalogue: the 16 pilot services, their triggers, fields and texts.

Departments edit `bot/catalogue/catalogue.yml`; this module validates it strictly at load so a
typo names the file, the service and the field instead of surfacing later as a wrong reminder.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, ValidationError, root_validator, validator

SERVICE_CODES = (
    "cccd_doi_the",
    "tam_tru_gia_han",
    "ho_chieu_cap_lai",
    "gplx_doi",
    "thuong_tru_tre_em",
    "khai_sinh",
    "khai_tu",
    "ly_lich_tu_phap",
    "gp_ban_le_ruou",
    "gcn_ban_le_lpg",
    "the_hdv_du_lich",
    "hang_co_so_luu_tru",
    "gp_buc_xa",
    "kiem_dinh_phuong_tien_do",
    "gp_khai_thac_nuoc",
    "gcn_attp_nong_san",
)
SECTORS = (
    "Công an",
    "Tư pháp",
    "Công Thương",
    "Văn hóa, Thể thao và Du lịch",
    "Khoa học và Công nghệ",
    "Nông nghiệp và Môi trường",
)
# Where a pre-filled field comes from: a registry column, a field of the triggering record, or
# "ask" (the citizen types it). Record attributes are addressed as record.attributes.<name>.
SOURCE_RE = re.compile(
    r"^(ask|citizen\.(cccd|full_name|date_of_birth|sex|phone|email|permanent_address|"
    r"temporary_address|commune)|business\.(tax_code|name|address|commune|phone|email)|"
    r"record\.(number|issued_on|valid_until|event_date|attributes\.[a-z][a-z0-9_]*))$"
)
Validator = Literal["text", "name", "date", "cccd", "phone", "email", "choice", "integer"]
VALIDATORS: tuple[Validator, ...] = get_args(Validator)
TEMPLATE_FIELDS = ("name", "service", "document", "due_date", "deadline", "days_left", "fee")
# The national code of a procedure in the National Database on Administrative Procedures
# (Cơ sở dữ liệu quốc gia về thủ tục hành chính), e.g. "2.000488". A province's listing shows it
# with the implementing agency appended ("2.000488.000.00.00.H62"); only the national part is
# kept, since it names the same procedure in every province.
PROCEDURE_CODE_RE = re.compile(r"[0-9]\.[0-9]{6}")
# Official Vietnamese government sites (dichvucong.gov.vn, dichvucong.bocongan.gov.vn, ...).
OFFICIAL_HOST_SUFFIX = ".gov.vn"


def is_official_url(url: str) -> bool:
    """An https:// address whose host is a .gov.vn site, with no credentials or port."""
    if not url or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme == "https"
        and host.endswith(OFFICIAL_HOST_SUFFIX)
        and "@" not in parts.netloc
        and port is None
    )


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names file, service and field."""


class Strict(BaseModel):
    class Config:
        extra = "forbid"
        allow_mutation = False


class RecordKind(Strict):
    """A kind of record departments upload; `dates` lists the date columns a row must have."""

    code: str = Field(regex=r"^[a-z][a-z0-9_]*$")
    name: str
    subject: Literal["citizen", "business"]
    dates: list[Literal["issued_on", "valid_until", "event_date"]] = []
    attributes: list[str] = []


class ExpiryTrigger(Strict):
    """Due when a record's `valid_until` approaches; filing must happen `file_before_days` ahead."""

    rule: Literal["expiry"]
    record_kind: str
    file_before_days: int = Field(0, ge=0)


class AgeMilestoneTrigger(Strict):
    """Identity cards: renew at set ages, with a grace window and a lifetime-card age."""

    rule: Literal["age_milestone"]
    record_kind: str
    milestones: list[int]
    grace_years: int = Field(ge=0)
    no_expiry_from_age: int = Field(gt=0)

    @validator("milestones")
    def _ascending(cls, v: list[int]) -> list[int]:
        if not v or v != sorted(set(v)):
            raise ValueError("must be a non-empty ascending list of ages")
        return v


class EventDeadlineTrigger(Strict):
    """Due after an event (a birth, a death): register within `within_days` of `event_date`."""

    rule: Literal["event_deadline"]
    record_kind: str
    within_days: int = Field(gt=0)
    # A later record of this kind for the same person means the event was registered already.
    fulfilled_by: str | None = None


class JoinedTrigger(Strict):
    """Follows another service's result automatically (level 4)."""

    rule: Literal["joined"]
    after_service: str
    record_kind: str
    within_days: int = Field(gt=0)


class OnRequestTrigger(Strict):
    rule: Literal["on_request"]


Trigger = (
    ExpiryTrigger | AgeMilestoneTrigger | EventDeadlineTrigger | JoinedTrigger | OnRequestTrigger
)


class DossierField(Strict):
    key: str = Field(regex=r"^[a-z][a-z0-9_]*$")
    label: str
    source: str
    validate_as: Validator = Field("text", alias="validate")
    options: list[str] = []
    prompt: str | None = None

    class Config:
        allow_population_by_field_name = True

    @validator("source")
    def _known_source(cls, v: str) -> str:
        if not SOURCE_RE.match(v):
            raise ValueError(f"unknown source '{v}'")
        return v

    @root_validator(skip_on_failure=True)
    def _ask_needs_prompt(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values["source"] == "ask" and not values.get("prompt"):
            raise ValueError("a field with source 'ask' needs a prompt")
        if values["validate_as"] == "choice" and len(values.get("options") or []) < 2:
            raise ValueError("a 'choice' field needs at least two options")
        return values


class Fee(Strict):
    amount: int | None = Field(None, ge=0)
    text: str
    # Waived when the dossier is filed by its trigger's deadline (the ID card at the statutory
    # ages): the submission then gets no payment request.
    exempt_on_time: bool = False


class ProcessingTime(Strict):
    days: int = Field(ge=0)
    working_days: bool
    text: str


class Texts(Strict):
    """Reminder texts; placeholders are the names in TEMPLATE_FIELDS."""

    reminder: str
    reminder_sms: str | None = None

    @validator("reminder", "reminder_sms")
    def _known_placeholders(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for name in re.findall(r"{(\w+)}", v):
            if name not in TEMPLATE_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}")
        return v


class Service(Strict):
    code: str
    name: str
    short_name: str
    sector: Literal[SECTORS]  # type: ignore[valid-type]
    agency: str
    # The plan's online-payment targets differ by the level that receives the dossier.
    authority: Literal["province", "commune"]
    # What a parent named by population data may do for a minor child: see it due ("see"), or
    # also prepare and file it ("file": the child's own document, fields describing the child).
    parent_may: Literal["see", "file"] | None = None
    level: int = Field(ge=1, le=4)
    subject: Literal["citizen", "business"]
    trigger: Trigger = Field(discriminator="rule")
    remind_days_before: list[int] = []
    fields: list[DossierField]
    documents: list[str]
    fee: Fee
    processing_time: ProcessingTime
    legal_basis: list[str] = Field(min_items=1)
    # Where the answers come from, shown after each procedure answer. Filled in only from an
    # official source (named in a comment in the catalogue); None when not confirmed.
    procedure_code: str | None = None
    portal_url: str | None = None
    texts: Texts

    @validator("procedure_code")
    def _national_code(cls, v: str | None) -> str | None:
        if v is not None and not PROCEDURE_CODE_RE.fullmatch(v):
            raise ValueError(f"'{v}' is not a national procedure code such as '2.000488'")
        return v

    @validator("portal_url")
    def _official_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not is_official_url(v):
            raise ValueError(f"'{v}' is not an https:// address on an official .gov.vn site")
        return v

    @validator("code")
    def _contract_code(cls, v: str) -> str:
        if v not in SERVICE_CODES:
            raise ValueError(f"'{v}' is not one of the 16 service codes")
        return v

    @root_validator(skip_on_failure=True)
    def _filed_for_a_child(cls, values: dict[str, Any]) -> dict[str, Any]:
        own_document = values["subject"] == "citizen" and values["level"] in (2, 3)
        if values.get("parent_may") == "file" and not own_document:
            raise ValueError("parent_may: file needs a citizen's level-2 or level-3 service")
        return values

    @validator("remind_days_before")
    def _descending(cls, v: list[int]) -> list[int]:
        if v != sorted(set(v), reverse=True) or any(d <= 0 for d in v):
            raise ValueError("must be distinct positive day counts, largest first")
        return v

    @validator("fields")
    def _unique_keys(cls, v: list[DossierField]) -> list[DossierField]:
        keys = [f.key for f in v]
        if len(keys) != len(set(keys)):
            raise ValueError("field keys must be unique")
        return v

    @property
    def has_trigger(self) -> bool:
        return self.trigger.rule != "on_request"

    def record_kind(self) -> str | None:
        return getattr(self.trigger, "record_kind", None)


class Catalogue(Strict):
    version: int
    record_kinds: list[RecordKind]
    services: list[Service]

    @root_validator(skip_on_failure=True)
    def _cross_references(cls, values: dict[str, Any]) -> dict[str, Any]:
        kinds = {k.code: k for k in values["record_kinds"]}
        codes = [s.code for s in values["services"]]
        if len(codes) != len(set(codes)):
            raise ValueError("service codes must be unique")
        missing = set(SERVICE_CODES) - set(codes)
        if missing:
            raise ValueError(f"missing services: {', '.join(sorted(missing))}")
        for svc in values["services"]:
            kind = svc.record_kind()
            if kind is not None and kind not in kinds:
                raise ValueError(f"service '{svc.code}': trigger.record_kind '{kind}' is unknown")
            if kind is not None and kinds[kind].subject != svc.subject:
                raise ValueError(f"service '{svc.code}': record kind '{kind}' has another subject")
            fulfilled_by = getattr(svc.trigger, "fulfilled_by", None)
            if fulfilled_by is not None and fulfilled_by not in kinds:
                raise ValueError(
                    f"service '{svc.code}': trigger.fulfilled_by '{fulfilled_by}' unknown"
                )
            after = getattr(svc.trigger, "after_service", None)
            if after is not None and after not in codes:
                raise ValueError(f"service '{svc.code}': trigger.after_service '{after}' unknown")
        return values

    @property
    def codes(self) -> frozenset[str]:
        """The service codes, to check a code from an entity, a slot or a button."""
        return frozenset(s.code for s in self.services)

    def service(self, code: str) -> Service:
        for svc in self.services:
            if svc.code == code:
                return svc
        raise KeyError(code)

    def record_kind(self, code: str) -> RecordKind:
        for kind in self.record_kinds:
            if kind.code == code:
                return kind
        raise KeyError(code)


def _describe(exc: ValidationError, raw: dict[str, Any], path: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "catalogue"
        if len(loc) >= 2 and loc[0] in ("services", "record_kinds") and isinstance(loc[1], int):
            items = raw.get(loc[0]) or []
            item = items[loc[1]] if loc[1] < len(items) else {}
            label = "service" if loc[0] == "services" else "record kind"
            code = item.get("code", f"#{loc[1] + 1}") if isinstance(item, dict) else f"#{loc[1]}"
            where = f"{label} '{code}'"
            loc = loc[2:]
        # Pydantic names the union member it tried (e.g. ExpiryTrigger); drop those from the path.
        field = ".".join(str(p) for p in loc if not str(p)[:1].isupper() and p != "__root__")
        prefix = f"{path}: {where}: field '{field}'" if field else f"{path}: {where}"
        lines.append(f"{prefix}: {err['msg']}")
    return "\n".join(lines)


def load_catalogue(path: Path | str) -> Catalogue:
    """Parse and validate a catalogue file, raising CatalogueError with precise locations."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: the catalogue must be a mapping with 'services'")
    try:
        return Catalogue.parse_obj(raw)
    except ValidationError as exc:
        raise CatalogueError(_describe(exc, raw, path)) from exc


@lru_cache(maxsize=4)
def _cached(path: str) -> Catalogue:
    return load_catalogue(path)


def get_catalogue(path: Path | str | None = None) -> Catalogue:
    """The configured catalogue, loaded once per process."""
    from bot.core.config import load_settings

    return _cached(str(path or load_settings().catalogue_path))
