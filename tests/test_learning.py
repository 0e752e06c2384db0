"""The learning loop's review step (bot/learning): an officer's reviewed export checked example by
example and merged into nlu/reviewed.yml. Every test works on a copy of nlu/ under tmp_path and
small held-out sets of its own; the real nlu/ and bench/ sets are never written. Examples meant
to be new end in "kt1", a token no training sentence has, so they stay new as nlu/ grows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from bot.__main__ import main
from bot.core.config import PROJECT_ROOT
from bot.learning import nlu_data
from bot.learning.heldout import load_utterances, sentence_key
from bot.learning.nlu_data import REVIEWED_FILE, NluFileError, read_examples
from bot.learning.review import ReviewReport, review

DOMAIN = PROJECT_ROOT / "domain.yml"
HELD_OUT = """\
utterances:
  - text: "Tôi muốn gia hạn tạm trú thì làm thế nào?"
    intent: request_service
    service: tam_tru_gia_han
    style: formal
  - text: "cho tôi đóng lệ phí online"
    intent: pay_fee
"""
BATCH = """\
utterances:
  - text: "mình cần đổi thẻ căn cước gấp"
    intent: request_service
    service: cccd_doi
"""


@pytest.fixture
def nlu_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(PROJECT_ROOT / "nlu", tmp_path / "nlu"))


@pytest.fixture
def held_out(tmp_path: Path) -> list[Path]:
    (tmp_path / "independent_set.yml").write_text(HELD_OUT, encoding="utf-8")
    (tmp_path / "learning_batch.yml").write_text(BATCH, encoding="utf-8")
    return [tmp_path / "independent_set.yml", tmp_path / "learning_batch.yml"]


def export(tmp_path: Path, blocks: dict[str, list[str]], name: str = "export.yml") -> Path:
    """A file in the console's export format (console/labels.py `nlu_yaml`)."""
    lines = ["# Review before adding to nlu/.", 'version: "3.1"', "nlu:"]
    for intent, examples in blocks.items():
        lines += [f"- intent: {intent}", "  examples: |", *[f"    - {e}" for e in examples]]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(path: Path, nlu_dir: Path, held_out: list[Path], dry_run: bool = False) -> ReviewReport:
    return review(path, nlu_dir=nlu_dir, domain=DOMAIN, held_out_sets=held_out, dry_run=dry_run)


def decisions(report: ReviewReport) -> dict[str, tuple[str, str]]:
    return {v.example.text: (v.decision, v.reason) for v in report.verdicts}


def reviewed(nlu_dir: Path) -> dict[str, list[str]]:
    data = yaml.safe_load((nlu_dir / REVIEWED_FILE).read_text(encoding="utf-8"))
    return {b["intent"]: b["examples"].splitlines() for b in data["nlu"]}


def test_accepted_examples_are_merged_into_reviewed_yml(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path]
) -> None:
    path = export(
        tmp_path,
        {
            "request_service": [
                "cho mình làm lại cái bằng lái bị mất kt1",
                "thẻ 066*******34 hết hạn kt1",
            ],
            "ask_fee": ["lệ phí hộ chiếu hết nhiêu vậy ad kt1"],
        },
    )
    report = run(path, nlu_dir, held_out)

    assert [v.decision for v in report.verdicts] == ["accepted"] * 3
    assert report.written == nlu_dir / REVIEWED_FILE
    text = report.written.read_text(encoding="utf-8")
    assert text.startswith("# Messages officers flagged as misunderstood")
    assert 'version: "3.1"' in text
    assert reviewed(nlu_dir) == {  # one block per intent, sorted by name
        "ask_fee": ["- lệ phí hộ chiếu hết nhiêu vậy ad kt1"],
        "request_service": [
            "- cho mình làm lại cái bằng lái bị mất kt1",
            "- thẻ 066*******34 hết hạn kt1",
        ],
    }
    assert list(reviewed(nlu_dir)) == ["ask_fee", "request_service"]
    assert report.written.stat().st_mode & 0o777 == nlu_dir.stat().st_mode & 0o666  # like nlu/


def test_a_second_round_keeps_the_first_in_order_and_adds_only_new_examples(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path]
) -> None:
    first = export(
        tmp_path, {"ask_fee": ["phí làm hộ chiếu nhiêu tiền kt1", "đổi gplx tốn bao nhiêu kt1"]}
    )
    run(first, nlu_dir, held_out)
    second = export(
        tmp_path,
        {
            "ask_fee": ["đổi gplx tốn bao nhiêu kt1", "cấp lại hộ chiếu mất mấy đồng kt1"],
            "greet": ["hú kt1"],
        },
        name="second.yml",
    )
    report = run(second, nlu_dir, held_out)

    assert decisions(report)["đổi gplx tốn bao nhiêu kt1"] == (
        "duplicate",
        "already in nlu/reviewed.yml",
    )
    assert reviewed(nlu_dir) == {
        "ask_fee": [
            "- phí làm hộ chiếu nhiêu tiền kt1",
            "- đổi gplx tốn bao nhiêu kt1",
            "- cấp lại hộ chiếu mất mấy đồng kt1",
        ],
        "greet": ["- hú kt1"],
    }
    before = (nlu_dir / REVIEWED_FILE).read_text(encoding="utf-8")
    again = run(second, nlu_dir, held_out)  # the same file twice changes nothing
    assert {v.decision for v in again.verdicts} == {"duplicate"}
    assert again.written is None
    assert (nlu_dir / REVIEWED_FILE).read_text(encoding="utf-8") == before


def test_examples_already_in_nlu_are_duplicates_and_skipped(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path]
) -> None:
    path = export(
        tmp_path,
        {
            "greet": ["Xin   chào"],  # nlu/chitchat.yml: "xin chào" (case and spacing aside)
            # nlu/dossiers.yml, annotated: "hồ sơ [khai sinh]{…} của con tôi xong chưa"
            "check_status": ["hồ sơ khai sinh của con tôi xong chưa", "hs khai sinh xong chưa kt1"],
            "deny": ["chào bạn"],  # nlu/chitchat.yml as greet: skipped, and the reason says so
        },
    )
    found = decisions(run(path, nlu_dir, held_out))

    # which file of nlu/ holds them may change as nlu/ grows
    assert found["Xin chào"][0] == "duplicate"
    assert found["Xin chào"][1].startswith("already in nlu/")
    assert found["hồ sơ khai sinh của con tôi xong chưa"][0] == "duplicate"
    assert found["chào bạn"][0] == "duplicate"
    assert found["chào bạn"][1].endswith(".yml as 'greet'")
    assert found["hs khai sinh xong chưa kt1"][0] == "accepted"
    assert reviewed(nlu_dir) == {"check_status": ["- hs khai sinh xong chưa kt1"]}


def test_one_sentence_with_two_intents_is_refused_both_times(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path]
) -> None:
    # without diacritics it is another training example, but the same sentence
    path = export(tmp_path, {"check_status": ["hs xong chưa ad"], "deny": ["hs xong chua ad"]})
    found = decisions(run(path, nlu_dir, held_out))

    assert found["hs xong chưa ad"] == (
        "refused",
        "the same sentence is also given line 9 as 'deny': which is it?",
    )
    assert found["hs xong chua ad"][0] == "refused"
    assert not (nlu_dir / REVIEWED_FILE).exists()


@pytest.mark.parametrize(
    "text",
    [
        "Tôi muốn gia hạn tạm trú thì làm thế nào?",  # as in the set
        "toi muon gia han tam tru thi lam the nao",  # without diacritics, case or punctuation
        "TÔI MUỐN  GIA HẠN TẠM TRÚ, THÌ LÀM THẾ NÀO",
        "minh can doi the can cuoc gap",  # the learning batch is held out too
    ],
)
def test_a_held_out_sentence_is_refused_with_or_without_diacritics(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], text: str
) -> None:
    path = export(tmp_path, {"request_service": [text, "tôi muốn đăng ký tạm trú cho con kt1"]})
    report = run(path, nlu_dir, held_out)

    decision, reason = decisions(report)[" ".join(text.split())]
    assert decision == "refused"
    assert "held-out set" in reason
    assert "must never be trained on" in reason
    assert reviewed(nlu_dir) == {"request_service": ["- tôi muốn đăng ký tạm trú cho con kt1"]}


def test_unknown_and_system_intents_are_refused(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path]
) -> None:
    path = export(
        tmp_path,
        {"book_flight": ["cho tôi đặt vé máy bay"], "EXTERNAL_reminder": ["nhắc tôi nhé"]},
    )
    report = run(path, nlu_dir, held_out)

    found = decisions(report)
    assert found["cho tôi đặt vé máy bay"] == (
        "refused",
        "intent 'book_flight' is not in domain.yml",
    )
    assert found["nhắc tôi nhé"][0] == "refused"
    assert "system only" in found["nhắc tôi nhé"][1]
    assert report.written is None
    assert not (nlu_dir / REVIEWED_FILE).exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("số của tôi là 066190001234", "unmasked number of 12 digits"),
        ("gọi 0905 123 456 giúp", "unmasked number of 10 digits"),
        ("mã 123.456.789 là gì", "unmasked number of 9 digits"),
        ("tôi muốn [đổi căn cước](service)", "square brackets"),
        ("x" * 301, "301 characters, more than 300"),
    ],
)
def test_unsafe_examples_are_refused(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], text: str, reason: str
) -> None:
    report = run(export(tmp_path, {"request_service": [text]}), nlu_dir, held_out)

    [verdict] = report.verdicts
    assert (verdict.decision, verdict.example.line) == ("refused", 6)
    assert reason in verdict.reason
    assert not (nlu_dir / REVIEWED_FILE).exists()


@pytest.mark.parametrize(
    "text",
    [
        "số 066*******34 đổi thẻ kt1",
        "số *********234 đổi thẻ kt1",
        "sđt 09******56 kt1",
        "hồ sơ DLK-261201-00999 sao rồi kt1",
    ],
)
def test_masked_numbers_and_dossier_codes_are_fine(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], text: str
) -> None:
    report = run(export(tmp_path, {"check_status": [text]}), nlu_dir, held_out)

    assert [v.decision for v in report.verdicts] == ["accepted"]


def test_empty_example_is_refused(tmp_path: Path, nlu_dir: Path, held_out: list[Path]) -> None:
    path = tmp_path / "export.yml"
    path.write_text(
        "nlu:\n- intent: greet\n  examples: |\n    - \n    - hú hú kt1\n", encoding="utf-8"
    )
    found = decisions(run(path, nlu_dir, held_out))

    assert found[""] == ("refused", "empty example")
    assert found["hú hú kt1"][0] == "accepted"


def test_the_write_is_atomic(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(export(tmp_path, {"ask_fee": ["phí làm hộ chiếu nhiêu tiền kt1"]}), nlu_dir, held_out)
    before = (nlu_dir / REVIEWED_FILE).read_bytes()
    files = sorted(p.name for p in nlu_dir.iterdir())
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def failing_replace(src: str, dst: Path) -> None:
        renames.append((src, str(dst)))
        assert Path(src).parent == nlu_dir  # written beside the target, then renamed
        assert yaml.safe_load(Path(src).read_text(encoding="utf-8"))["nlu"]  # complete
        raise OSError("disk full")

    monkeypatch.setattr(nlu_data.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        run(export(tmp_path, {"greet": ["hú hú kt1"]}, name="second.yml"), nlu_dir, held_out)

    assert len(renames) == 1
    assert (nlu_dir / REVIEWED_FILE).read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in nlu_dir.iterdir()) == files  # no temporary file left
    monkeypatch.setattr(nlu_data.os, "replace", real_replace)
    run(export(tmp_path, {"greet": ["hú hú kt1"]}, name="third.yml"), nlu_dir, held_out)
    assert reviewed(nlu_dir)["greet"] == ["- hú hú kt1"]
    assert sorted(p.name for p in nlu_dir.iterdir()) == files


def test_dry_run_writes_nothing(tmp_path: Path, nlu_dir: Path, held_out: list[Path]) -> None:
    report = run(export(tmp_path, {"greet": ["hú hú kt1"]}), nlu_dir, held_out, dry_run=True)

    assert [v.decision for v in report.verdicts] == ["accepted"]
    assert report.written is None
    assert not (nlu_dir / REVIEWED_FILE).exists()


def cli(path: Path, nlu_dir: Path, held_out: list[Path], *extra: str) -> int:
    held = [arg for p in held_out for arg in ("--held-out", str(p))]
    return main(["nlu-review", str(path), "--nlu-dir", str(nlu_dir), *held, *extra])


def test_cli_dry_run_prints_decisions_and_writes_nothing(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(tmp_path, {"greet": ["hú hú kt1", "xin chào"]})
    files = {p.name: p.read_bytes() for p in nlu_dir.iterdir()}

    assert cli(path, nlu_dir, held_out, "--dry-run") == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "6", "accepted", "greet", "hú", "hú", "kt1"]
    assert out[1].startswith("line    7  duplicate  greet  xin chào — already in nlu/")
    assert out[-1] == "1 accepted, 1 duplicate, 0 refused; dry run: nothing written."
    assert {p.name: p.read_bytes() for p in nlu_dir.iterdir()} == files


def test_cli_merges_and_exits_1_when_anything_is_refused(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(tmp_path, {"greet": ["hú hú kt1"], "book_flight": ["đặt vé"]})

    assert cli(path, nlu_dir, held_out) == 1

    out = capsys.readouterr().out
    assert "refused    book_flight  đặt vé — intent 'book_flight' is not in domain.yml" in out
    assert out.splitlines()[-1] == (
        f"1 accepted, 0 duplicate, 1 refused; merged into {nlu_dir / REVIEWED_FILE}; "
        "retrain with `make train`."
    )
    assert reviewed(nlu_dir) == {"greet": ["- hú hú kt1"]}
    assert cli(path, nlu_dir, held_out) == 1  # book_flight still refused; hú hú kt1 a duplicate


def test_cli_refuses_an_unreadable_file_or_missing_held_out_set(
    tmp_path: Path, nlu_dir: Path, held_out: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    synonyms = tmp_path / "synonyms.yml"
    synonyms.write_text("nlu:\n- synonym: cccd_doi\n  examples: |\n    - doi cccd\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("nlu: [\n")
    good = export(tmp_path, {"greet": ["hú hú kt1"]})

    assert cli(synonyms, nlu_dir, held_out) == 2
    assert cli(broken, nlu_dir, held_out) == 2
    assert cli(tmp_path / "missing.yml", nlu_dir, held_out) == 2
    assert cli(good, nlu_dir, [tmp_path / "no_such_set.yml"]) == 2  # no check, no write

    err = capsys.readouterr().err
    assert "only `- intent:` blocks" in err
    assert "not valid YAML" in err
    assert "no_such_set.yml: not found" in err
    assert not (nlu_dir / REVIEWED_FILE).exists()


def test_examples_keep_their_line_numbers(tmp_path: Path) -> None:
    path = export(tmp_path, {"greet": ["a", "b"], "deny": ["c"]})

    assert [(e.line, e.intent, e.text) for e in read_examples(path)] == [
        (6, "greet", "a"),
        (7, "greet", "b"),
        (10, "deny", "c"),
    ]
    with pytest.raises(NluFileError, match="line 4"):
        bad = tmp_path / "bad.yml"
        bad.write_text("nlu:\n- intent: greet\n  examples: |\n    chào\n", encoding="utf-8")
        read_examples(bad)


def test_held_out_sets_are_read_with_their_labels(held_out: list[Path]) -> None:
    first = load_utterances(held_out[0])[0]

    assert (first.intent, first.service, first.style) == (
        "request_service",
        "tam_tru_gia_han",
        "formal",
    )
    assert sentence_key("Đổi CCCD  ở đâu?") == sentence_key("doi cccd o dau") == "doi cccd o dau"
