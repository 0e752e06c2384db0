"""Department import against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.config import PROJECT_ROOT
from bot.core.models import Business, Citizen, Record
from bot.data.importer import import_file
from bot.data.tabular import FileFormatError

CITIZENS_CSV = """so_dinh_danh,ho_ten,ngay_sinh,gioi_tinh,so_dien_thoai,dia_chi_thuong_tru,xa_phuong
066085001234,Nguyễn Văn An,02/04/1985,Nam,0905123456,"12 Lê Duẩn, Tân An",phường Tân An
066192004321,Trần Thị Bình,1992-11-20,Nữ,+84912345678,Thôn 3 xã Ea Kar,xã Ea Kar
06608500123,Lê Văn Cường,01/01/1985,Nam,0905000000,,
066085009999,Phạm Văn Dũng,31/02/1985,Nam,0905000001,,
066085001234,Nguyễn Văn An,02/04/1985,Nam,0905123456,,
066090007777,Hoàng Văn Em,01/01/1991,Nam,0905000002,,
066301001111,H'Hen Niê,15/07/2001,Nữ,0123,,
"""


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_good_rows_stored_once_and_bad_rows_reported(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(tmp_path, "citizens.csv", CITIZENS_CSV)
    report = import_file(engine, catalogue, "citizen", path)
    assert (report.rows, report.inserted) == (7, 2)
    reasons = {r.line: r.reason for r in report.rejected}
    assert "12 chữ số" in reasons[4]
    assert "ngày '31/02/1985'" in reasons[5]
    assert "trùng với dòng 2" in reasons[6]
    assert "năm sinh" in reasons[7]  # digit 5-6 say 1990, the row says 1991
    assert "số điện thoại" in reasons[8]
    assert count(engine, Citizen) == 2

    again = import_file(engine, catalogue, "citizen", path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert count(engine, Citizen) == 2
    with engine.connect() as conn:
        phone = conn.execute(select(Citizen.phone).where(Citizen.cccd == "066192004321")).scalar()
    assert phone == "0912345678"


def test_changed_row_is_updated_not_duplicated(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    import_file(engine, catalogue, "citizen", write(tmp_path, "a.csv", CITIZENS_CSV))
    changed = CITIZENS_CSV.replace('0905123456,"12 Lê Duẩn', '0987654321,"12 Lê Duẩn')
    report = import_file(engine, catalogue, "citizen", write(tmp_path, "b.csv", changed))
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    with engine.connect() as conn:
        phones = conn.execute(select(Citizen.phone).order_by(Citizen.cccd)).scalars().all()
    assert phones == ["0987654321", "0912345678"]


def test_xlsx_with_vietnamese_headers_and_date_cells(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    import_file(engine, catalogue, "citizen", write(tmp_path, "c.csv", CITIZENS_CSV))
    book = Workbook()
    sheet = book.active
    sheet.append(["Số định danh", "Số giấy tờ", "Ngày cấp", "Ngày hết hạn", "Địa chỉ tạm trú"])
    sheet.append(
        ["066085001234", "TT-001", dt.datetime(2025, 1, 10), dt.datetime(2027, 1, 10), "Thôn 1"]
    )
    sheet.append(["066192004321", "TT-002", "10/01/2025", "10/01/2024", None])
    sheet.append(["066099999999", "TT-003", "10/01/2025", "10/01/2027", None])
    sheet.append([None, None, None, None, None])
    path = tmp_path / "tam_tru.xlsx"
    book.save(path)

    report = import_file(engine, catalogue, "tam_tru", path)
    assert report.inserted == 1
    reasons = {r.line: r.reason for r in report.rejected}
    assert "hết hạn trước ngày cấp" in reasons[3]
    assert "không tìm thấy công dân" in reasons[4]
    with engine.connect() as conn:
        record = conn.execute(select(Record)).one()
    assert record.kind == "tam_tru" and record.valid_until == dt.date(2027, 1, 10)
    assert record.attributes == {"dia_chi_tam_tru": "Thôn 1"}
    assert import_file(engine, catalogue, "tam_tru", path).unchanged == 1


def test_business_records_resolve_by_tax_code(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    import_file(engine, catalogue, "citizen", write(tmp_path, "c.csv", CITIZENS_CSV))
    businesses = (
        "ma_so_thue;ten;dia_chi;so_dinh_danh_nguoi_dai_dien\n"
        "6001234567;Công ty TNHH Gas Hoàng Long;Ea Kar;066085001234\n"
        "6007654321;Hộ kinh doanh Rượu Cần;Lắk;066099999999\n"
    )
    report = import_file(engine, catalogue, "business", write(tmp_path, "b.csv", businesses))
    assert report.inserted == 1
    assert "không tìm thấy công dân" in report.rejected[0].reason
    licences = (
        "ma_so_thue,so_giay_to,ngay_cap,ngay_het_han\n6001234567,LPG-9,01/02/2022,01/02/2027\n"
    )
    assert (
        import_file(engine, catalogue, "gcn_lpg", write(tmp_path, "l.csv", licences)).inserted == 1
    )
    with engine.connect() as conn:
        owner = conn.execute(select(Business.representative_id)).scalar_one()
        business_id = conn.execute(select(Record.business_id)).scalar_one()
    assert owner is not None and business_id is not None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "tệp rỗng"),
        ("blank.csv", b"\n\n  \n", "tệp rỗng"),
        ("latin.csv", CITIZENS_CSV.encode("cp1258", errors="replace"), "UTF-8"),
        ("junk.csv", bytes(range(256)) * 4, "nhị phân"),
        ("fake.xlsx", b"PK\x03\x04 not really a zip", ".xlsx hợp lệ"),
        ("list.txt", b"so_dinh_danh\n066085001234\n", "không được hỗ trợ"),
        (
            "nocols.csv",
            b"ho_ten,ngay_sinh\nA,01/01/1990\n",
            "thiếu cột bắt buộc: so_dinh_danh",
        ),
    ],
)
def test_malformed_files_fail_with_one_line_and_write_nothing(
    engine: Engine, catalogue: Catalogue, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    with pytest.raises(FileFormatError, match=message) as info:
        import_file(engine, catalogue, "citizen", write(tmp_path, name, content))
    assert "\n" not in str(info.value)
    assert count(engine, Citizen) == 0


def test_junk_after_valid_rows_rolls_back_everything(
    engine: Engine, catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.data.importer.BATCH", 1)  # the first rows are written before the junk
    good = CITIZENS_CSV.encode()
    junk = "066085005555,Đỗ Văn Giang,01/01/1985,Nam,,,\n".encode("utf-16")
    with pytest.raises(FileFormatError):
        import_file(engine, catalogue, "citizen", write(tmp_path, "mixed.csv", good + junk))
    assert count(engine, Citizen) == 0


def test_unknown_kind_is_a_clear_error(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    with pytest.raises(FileFormatError, match="loại dữ liệu 'pets' không tồn tại"):
        import_file(engine, catalogue, "pets", write(tmp_path, "c.csv", CITIZENS_CSV))


def run_cli(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=PROJECT_ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_exit_codes_and_report(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "citizens.csv", CITIZENS_CSV)
    result = run_cli(db_url, "import", "--kind", "citizen", str(path))
    assert result.returncode == 1, result.stderr
    assert "Dòng 4: cột 'so_dinh_danh'" in result.stdout
    assert "thêm mới 2" in result.stdout and "bị từ chối 5" in result.stdout

    ok = write(
        tmp_path, "ok.csv", CITIZENS_CSV.splitlines()[0] + "\n" + CITIZENS_CSV.splitlines()[1]
    )
    result = run_cli(db_url, "import", "--kind", "citizen", str(ok))
    assert result.returncode == 0 and "không đổi 1" in result.stdout

    bad = write(tmp_path, "bad.csv", b"\xff\xfe\x00junk")
    result = run_cli(db_url, "import", "--kind", "citizen", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Không có dòng nào được ghi" in result.stderr
