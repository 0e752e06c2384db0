"""Reading departments' CSV and .xlsx lists as (line number, row) pairs with normalised headers."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bot.vietnamese.vn import fold

MAX_FIELD = 10_000
Rows = Generator[tuple[int, dict[str, object]], None, None]


class FileFormatError(ValueError):
    """The file as a whole cannot be read; nothing from it may be written."""


def header_key(title: object) -> str:
    """'Số định danh' → 'so_dinh_danh', so departments may keep Vietnamese column titles."""
    text = fold(str(title or "")).strip()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def count_data_rows(path: Path) -> int | None:
    """Cheap estimate for progress display; None when unknown."""
    if path.suffix.lower() == ".csv":
        with path.open("rb") as fh:
            return max(sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b"")) - 1, 0)
    return None


@contextmanager
def open_table(path: Path) -> Iterator[tuple[list[str], Iterator[tuple[int, dict[str, object]]]]]:
    """Headers and a lazy iterator of rows, closed on exit; FileFormatError if unreadable."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileFormatError(f"không tìm thấy tệp {path}")
    readers = {".csv": _read_csv, ".xlsx": _read_xlsx}
    if suffix not in readers:
        raise FileFormatError(
            f"định dạng '{suffix or '?'}' không được hỗ trợ: hãy dùng .csv hoặc .xlsx"
        )
    with ExitStack() as stack:
        yield readers[suffix](path, stack)


def _check_header(raw: Sequence[object]) -> list[str]:
    headers = [header_key(h) for h in raw]
    if not any(headers):
        raise FileFormatError("tệp không có dòng tiêu đề (dòng 1 phải là tên các cột)")
    dupes = {h for h in headers if h and headers.count(h) > 1}
    if dupes:
        raise FileFormatError(f"tiêu đề có cột trùng tên: {', '.join(sorted(dupes))}")
    return headers


def _decode_error(exc: UnicodeDecodeError) -> FileFormatError:
    return FileFormatError(
        f"tệp không phải văn bản UTF-8 (lỗi ở byte {exc.start}): hãy lưu lại từ Excel "
        "bằng 'CSV UTF-8 (Comma delimited)'"
    )


def _read_csv(path: Path, stack: ExitStack) -> tuple[list[str], Rows]:
    raw = path.read_bytes()[:65536]
    if not raw.strip():
        raise FileFormatError("tệp rỗng: không có dòng tiêu đề và không có dữ liệu")
    if b"\x00" in raw:
        raise FileFormatError("tệp chứa dữ liệu nhị phân, không phải CSV văn bản")
    try:
        sample = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not merely a character cut by the 64 KiB sample
            raise _decode_error(exc) from exc
        sample = raw[: exc.start].decode("utf-8-sig")
    try:
        dialect = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    csv.field_size_limit(MAX_FIELD)
    fh = stack.enter_context(io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", newline=""))
    reader = csv.reader(fh, delimiter=delimiter)
    try:
        headers = _check_header(next(reader, []))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FileFormatError(f"không đọc được dòng tiêu đề: {exc}") from exc

    def rows() -> Rows:
        try:
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                yield reader.line_num, _as_row(headers, record)
        except UnicodeDecodeError as exc:
            raise _decode_error(exc) from exc
        except csv.Error as exc:
            raise FileFormatError(f"dòng {reader.line_num}: CSV hỏng ({exc})") from exc

    return headers, rows()


def _read_xlsx(path: Path, stack: ExitStack) -> tuple[list[str], Rows]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise FileFormatError(f"tệp không phải bảng tính .xlsx hợp lệ ({exc})") from exc
    stack.callback(workbook.close)
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    first = next(values, None)
    if first is None:
        raise FileFormatError("bảng tính rỗng: không có dòng tiêu đề và không có dữ liệu")
    headers = _check_header(list(first))

    def rows() -> Rows:
        for line, record in enumerate(values, start=2):
            if all(cell is None or str(cell).strip() == "" for cell in record):
                continue
            yield line, _as_row(headers, list(record))

    return headers, rows()


def _as_row(headers: list[str], cells: Sequence[object]) -> dict[str, object]:
    row: dict[str, object] = {}
    for name, cell in zip(headers, cells, strict=False):
        if not name:
            continue
        if isinstance(cell, str):
            cell = cell.strip()
            if cell == "":
                cell = None
        row[name] = cell
    return row
