"""Department data import: validate every row, upsert by natural key, report rejects.

Departments without an integration upload CSV/.xlsx lists. Valid rows are written in one
transaction; re-importing the same file changes nothing; each rejected row is reported with its
line number and a Vietnamese reason so the department can fix its sheet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection, Engine

from bot.catalogue.model import Catalogue
from bot.core.clock import utcnow
from bot.core.db import refresh_statistics
from bot.core.models import Business, Citizen, ParentChild, Record
from bot.data.tabular import FileFormatError, count_data_rows, open_table
from bot.identity.family import parse_relation, relation_problem
from bot.vietnamese.vn import (
    InvalidValue,
    normalize_phone,
    parse_date,
    parse_sex,
    validate_cccd,
    validate_tax_code,
)

ANALYZE_AFTER_ROWS = 10_000
BATCH = 2000
Parser = Callable[[Any], Any]


def _text(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = " ".join(str(value).split())
        if len(text) > limit:
            raise InvalidValue(f"dài quá {limit} ký tự")
        return text

    return parse


def _name(value: Any) -> str:
    text = _text(120)(value)
    if any(ch.isdigit() for ch in text):
        raise InvalidValue("họ tên không được chứa chữ số")
    return text


def _email(value: Any) -> str:
    text = _text(254)(value)
    if "@" not in text or " " in text:
        raise InvalidValue(f"email '{text}' không hợp lệ")
    return text


@dataclass(frozen=True)
class Column:
    header: str
    target: str
    parse: Parser
    required: bool = False


@dataclass(frozen=True)
class KindSpec:
    """How one kind of list maps onto a table: columns, natural key, subject reference."""

    kind: str
    table: Table
    key: str
    columns: tuple[Column, ...]
    record_kind: str | None = None
    subject: str | None = None  # for records: "citizen" (by ID number) or "business" (tax code)

    @property
    def required_headers(self) -> list[str]:
        return [c.header for c in self.columns if c.required]


CITIZEN = KindSpec(
    "citizen",
    Citizen.__table__,
    "cccd",
    (
        Column("so_dinh_danh", "cccd", validate_cccd, True),
        Column("ho_ten", "full_name", _name, True),
        Column("ngay_sinh", "date_of_birth", parse_date, True),
        Column("gioi_tinh", "sex", parse_sex, True),
        Column("so_dien_thoai", "phone", normalize_phone),
        Column("email", "email", _email),
        Column("dia_chi_thuong_tru", "permanent_address", _text(255)),
        Column("dia_chi_tam_tru", "temporary_address", _text(255)),
        Column("xa_phuong", "commune", _text(120)),
    ),
)
BUSINESS = KindSpec(
    "business",
    Business.__table__,
    "tax_code",
    (
        Column("ma_so_thue", "tax_code", validate_tax_code, True),
        Column("ten", "name", _text(255), True),
        Column("dia_chi", "address", _text(255)),
        Column("xa_phuong", "commune", _text(120)),
        Column("so_dien_thoai", "phone", normalize_phone),
        Column("email", "email", _email),
        Column("so_dinh_danh_nguoi_dai_dien", "representative_cccd", validate_cccd),
    ),
)
# Who the population data names as a child's father, mother or guardian: the only source of
# who may see and act for a minor (`bot.identity.family`). Keyed by the pair of people.
_PARENT_CHILD_COLUMNS = (
    Column("so_dinh_danh_cha_me", "parent_cccd", validate_cccd, True),
    Column("so_dinh_danh_con", "child_cccd", validate_cccd, True),
    Column("quan_he", "relation", parse_relation, True),
    Column("ngay_cham_dut", "ended_on", parse_date),
)
PARENT_CHILD = KindSpec("parent_child", ParentChild.__table__, "pair", _PARENT_CHILD_COLUMNS)
DATE_HEADERS = {
    "issued_on": "ngay_cap",
    "valid_until": "ngay_het_han",
    "event_date": "ngay_su_kien",
}


def record_spec(catalogue: Catalogue, kind: str) -> KindSpec:
    rk = catalogue.record_kind(kind)
    subject = (
        Column("so_dinh_danh", "subject", validate_cccd, True)
        if rk.subject == "citizen"
        else Column("ma_so_thue", "subject", validate_tax_code, True)
    )
    dates = tuple(
        Column(header, target, parse_date, target in rk.dates)
        for target, header in DATE_HEADERS.items()
    )
    attrs = tuple(Column(a, f"attributes.{a}", _text(255)) for a in rk.attributes)
    number = Column("so_giay_to", "number", _text(60), True)
    return KindSpec(
        kind, Record.__table__, "number", (subject, number, *dates, *attrs), kind, rk.subject
    )


def spec_for(catalogue: Catalogue, kind: str) -> KindSpec:
    if kind == "citizen":
        return CITIZEN
    if kind == "business":
        return BUSINESS
    if kind == "parent_child":
        return PARENT_CHILD
    try:
        return record_spec(catalogue, kind)
    except KeyError:
        raise FileFormatError(
            f"loại dữ liệu '{kind}' không tồn tại; dùng: {', '.join(kinds(catalogue))}"
        ) from None


def kinds(catalogue: Catalogue) -> list[str]:
    return ["citizen", "business", "parent_child", *(k.code for k in catalogue.record_kinds)]


@dataclass
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


@dataclass
class _Parsed:
    line: int
    key: str
    values: dict[str, Any]


def _parse_row(spec: KindSpec, headers: set[str], line: int, row: dict[str, object]) -> _Parsed:
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for col in spec.columns:
        if col.header not in headers:
            continue
        raw = row.get(col.header)
        if raw is None:
            if col.required:
                raise InvalidValue(f"thiếu giá trị cột '{col.header}'")
            parsed = None
        else:
            try:
                parsed = col.parse(raw)
            except InvalidValue as exc:
                raise InvalidValue(f"cột '{col.header}': {exc}") from None
        if col.target.startswith("attributes."):
            if parsed is not None:
                attributes[col.target.split(".", 1)[1]] = parsed
        else:
            values[col.target] = parsed
    if spec is CITIZEN:
        validate_cccd(values["cccd"], values["date_of_birth"], values["sex"])
        if values["date_of_birth"] > dt.date.today():
            raise InvalidValue("ngày sinh ở tương lai")
    if spec.record_kind is not None:
        values["kind"] = spec.record_kind
        values["attributes"] = attributes
        issued, until = values.get("issued_on"), values.get("valid_until")
        if issued and until and until < issued:
            raise InvalidValue("ngày hết hạn trước ngày cấp")
    if spec is PARENT_CHILD:
        if values["parent_cccd"] == values["child_cccd"]:
            raise InvalidValue("số định danh của cha, mẹ và của con trùng nhau")
        return _Parsed(line, f"{values['parent_cccd']}–{values['child_cccd']}", values)
    return _Parsed(line, str(values[spec.key]), values)


def _rows_checked(
    spec: KindSpec,
    headers: list[str],
    rows: Iterable[tuple[int, dict[str, object]]],
    report: ImportReport,
) -> Iterator[_Parsed]:
    present = set(headers)
    seen: dict[str, int] = {}
    for line, row in rows:
        report.rows += 1
        try:
            parsed = _parse_row(spec, present, line, row)
        except InvalidValue as exc:
            report.rejected.append(RejectedRow(line, str(exc)))
            continue
        if parsed.key in seen:
            report.rejected.append(
                RejectedRow(line, f"trùng với dòng {seen[parsed.key]} (cùng mã '{parsed.key}')")
            )
            continue
        seen[parsed.key] = line
        yield parsed


def _resolve_refs(
    conn: Connection, spec: KindSpec, batch: list[_Parsed], report: ImportReport
) -> list[_Parsed]:
    """Turn ID numbers / tax codes into foreign keys; rows pointing at nobody are rejected."""
    if spec is PARENT_CHILD:
        return _resolve_family(conn, batch, report)
    if spec.subject is None and spec is not BUSINESS:
        return batch
    ref_key = "subject" if spec.subject else "representative_cccd"
    target = Business.__table__ if spec.subject == "business" else Citizen.__table__
    natural = target.c.tax_code if spec.subject == "business" else target.c.cccd
    wanted = {p.values[ref_key] for p in batch if p.values.get(ref_key)}
    ids = (
        dict(conn.execute(select(natural, target.c.id).where(natural.in_(wanted))).all())
        if wanted
        else {}
    )
    fk = (
        "business_id"
        if spec.subject == "business"
        else "citizen_id"
        if spec.subject
        else "representative_id"
    )
    kept = []
    for parsed in batch:
        had_column = ref_key in parsed.values
        ref = parsed.values.pop(ref_key, None)
        if ref is not None and ref not in ids:
            who = (
                "doanh nghiệp có mã số thuế"
                if spec.subject == "business"
                else "công dân có số định danh"
            )
            report.rejected.append(
                RejectedRow(parsed.line, f"không tìm thấy {who} {ref} trong dữ liệu")
            )
            continue
        if had_column:
            parsed.values[fk] = ids.get(ref) if ref is not None else None
        kept.append(parsed)
    return kept


def _resolve_family(conn: Connection, batch: list[_Parsed], report: ImportReport) -> list[_Parsed]:
    """Both people of a relation must exist, and the registry must allow the relation (the
    parent older than the child, a father a man and a mother a woman)."""
    people = Citizen.__table__
    wanted = {p.values[k] for p in batch for k in ("parent_cccd", "child_cccd")}
    found = {
        row.cccd: row
        for row in conn.execute(
            select(people.c.cccd, people.c.id, people.c.sex, people.c.date_of_birth).where(
                people.c.cccd.in_(wanted)
            )
        )
    }
    kept = []
    for parsed in batch:
        parent_cccd = parsed.values.pop("parent_cccd")
        child_cccd = parsed.values.pop("child_cccd")
        missing = next((c for c in (parent_cccd, child_cccd) if c not in found), None)
        if missing is not None:
            report.rejected.append(
                RejectedRow(
                    parsed.line, f"không tìm thấy công dân có số định danh {missing} trong dữ liệu"
                )
            )
            continue
        parent, child = found[parent_cccd], found[child_cccd]
        problem = relation_problem(
            parsed.values["relation"], parent.sex, parent.date_of_birth, child.date_of_birth
        )
        if problem is not None:
            report.rejected.append(RejectedRow(parsed.line, problem))
            continue
        parsed.values.update(parent_id=parent.id, child_id=child.id)
        kept.append(parsed)
    return kept


def _write_family(conn: Connection, batch: list[_Parsed], report: ImportReport) -> None:
    """Upsert relations by (parent, child): a new pair is inserted, a changed relation or end
    date updated; nothing is deleted (a relation ends with `ngay_cham_dut`)."""
    table = ParentChild.__table__
    existing = {
        (row.parent_id, row.child_id): row._mapping
        for row in conn.execute(
            select(table).where(table.c.child_id.in_({p.values["child_id"] for p in batch}))
        )
    }
    pairs = [((p.values["parent_id"], p.values["child_id"]), p.values) for p in batch]
    _upsert(conn, table, pairs, existing, report)


def _upsert(
    conn: Connection,
    table: Table,
    rows: list[tuple[Any, dict[str, Any]]],
    existing: Mapping[Any, Mapping[str, Any]],
    report: ImportReport,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Insert the rows whose key is new, update the changed ones, count the unchanged: one
    executemany each, so a file of thousands of rows costs a few statements."""
    now = utcnow()
    columns = sorted({c for _, values in rows for c in values})
    inserts, updates = [], []
    for key, values in rows:
        current = existing.get(key)
        if current is None:
            inserts.append({**(defaults or {}), **values, "created_at": now, "updated_at": now})
        elif any(current[c] != v for c, v in values.items()):
            updates.append({**{f"v_{c}": values.get(c) for c in columns}, "row_id": current["id"]})
        else:
            report.unchanged += 1
    if inserts:
        conn.execute(table.insert(), inserts)
        report.inserted += len(inserts)
    if updates:
        stmt = (
            table.update()
            .where(table.c.id == bindparam("row_id"))
            .values({**{c: bindparam(f"v_{c}") for c in columns}, "updated_at": now})
        )
        conn.execute(stmt, updates)
        report.updated += len(updates)


def _write_batch(
    conn: Connection, spec: KindSpec, batch: list[_Parsed], report: ImportReport
) -> None:
    if spec is PARENT_CHILD:
        _write_family(conn, batch, report)
        return
    table = spec.table
    key_col = table.c[spec.key]
    columns = sorted({c for p in batch for c in p.values})
    existing_q = select(table.c.id, *(table.c[c] for c in columns)).where(
        key_col.in_([p.key for p in batch])
    )
    if spec.record_kind is not None:
        existing_q = existing_q.where(table.c.kind == spec.record_kind)
    existing = {str(row._mapping[spec.key]): row._mapping for row in conn.execute(existing_q)}
    defaults = {"source": "import"} if spec.record_kind is not None else None
    _upsert(conn, table, [(p.key, p.values) for p in batch], existing, report, defaults)


def _batches(items: Iterator[_Parsed], size: int) -> Iterator[list[_Parsed]]:
    while batch := list(islice(items, size)):
        yield batch


ProgressFn = Callable[[int, int | None], None]


def import_file(
    engine: Engine,
    catalogue: Catalogue,
    kind: str,
    path: Path,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Import one department list; raises FileFormatError (and writes nothing) for a bad file."""
    spec = spec_for(catalogue, kind)
    total = count_data_rows(path)
    report = ImportReport(kind)
    with open_table(path) as (headers, rows):
        missing = [h for h in spec.required_headers if h not in headers]
        if missing:
            raise FileFormatError(
                f"thiếu cột bắt buộc: {', '.join(missing)} "
                f"(tiêu đề đọc được: {', '.join(h for h in headers if h)})"
            )
        with engine.begin() as conn:
            for batch in _batches(_rows_checked(spec, headers, rows, report), BATCH):
                batch = _resolve_refs(conn, spec, batch, report)
                if batch:
                    _write_batch(conn, spec, batch, report)
                if progress:
                    progress(report.rows, total)
    if report.rows >= ANALYZE_AFTER_ROWS:
        refresh_statistics(engine)
    report.rejected.sort(key=lambda r: r.line)
    return report
