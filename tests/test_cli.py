"""The pharmamod command, in-process, on real files."""

import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_check_explains_the_verdict():
    r = run("check", "just take 400mg of ibuprofen three times a day")
    assert r.exit_code == 0
    assert "HOLD" in r.output and "advice.directive" in r.output and "drug: ibuprofen" in r.output


def test_scan_jsonl_reports_bad_lines_and_goes_on(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "a", "text": "anyone on ozempic?"}\n'
        b'{not json}\n'
        b'{"id": "c", "text": "caf\xe9 invalid utf-8"}\n'
        b'{"id": "d"}\n'
        b'{"id": "e", "text": "good morning all"}\n'
    )
    out = tmp_path / "out.jsonl"
    r = run("scan", str(src), "--output", str(out))
    assert r.exit_code == 0
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l.get("id") for l in lines] == ["a", None, None, "d", "e"]
    assert lines[0]["action"] == "hold" and lines[0]["drugs"] == ["semaglutide"]
    assert lines[0]["categories"] == ["drug_mention"]
    assert lines[0]["hits"][0]["span"] == [10, 17] and lines[0]["hits"][0]["text"] == "ozempic"
    assert lines[1] == {"id": None, "line": 2, "error": lines[1]["error"]} and "invalid JSON" in lines[1]["error"]
    assert "UTF-8" in lines[2]["error"] and lines[2]["line"] == 3
    assert lines[3]["line"] == 4 and "no text" in lines[3]["error"]
    assert lines[4]["action"] == "allow"
    assert "line 2:" in r.stderr and "screened 2 message(s)" in r.stderr and "errors 3" in r.stderr


def test_scan_csv_and_stdin(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,body\n1,my xanaxx ran out\n2,lovely weather\n", encoding="utf-8")
    r = run("scan", str(src))
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert [l["drugs"] for l in lines] == [["alprazolam"], []]
    r = run("scan", "-", input='{"text": "metforman"}\n')
    assert json.loads(r.stdout.splitlines()[0])["drugs"] == ["metformin"]


def test_scan_thread_context_from_reply_to(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "p", "text": "anyone on lamotrigine?"}\n'
                   '{"id": "r", "reply_to": "p", "text": "it gave me a horrible rash"}\n', encoding="utf-8")
    lines = [json.loads(l) for l in run("scan", str(src)).stdout.splitlines()]
    assert "adverse_event" in lines[1]["categories"]
    assert lines[1]["adverse_event"]["suspect_drugs"] == ["lamotrigine"]


def test_sample_community_scans():
    r = run("scan", str(ROOT / "examples" / "community.jsonl"))
    assert r.exit_code == 0 and "held" in r.stderr


def test_rules_lint_and_test_pass_on_shipped_packs():
    assert run("rules", "lint").exit_code == 0
    r = run("rules", "test")
    assert r.exit_code == 0 and "passed" in r.output


def test_rules_lint_fails_with_located_errors(tmp_path):
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "mine.yaml").write_text(
        "pack:\n  id: mine\n  title: Mine\n  rules:\n    - id: r1\n      title: t\n      category: drug_mention\n"
        "      match: {drugz: named}\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["rules", "lint", "--rules", str(tmp_path)])
    assert r.exit_code == 1
    assert "mine.yaml:8:" in r.stderr and "did you mean 'drugs'?" in r.stderr


def test_eval_prints_scores_and_misses():
    r = run("eval", str(ROOT / "tests" / "corpus" / "en.jsonl"))
    assert r.exit_code == 0 and "adverse_event" in r.output and "drug names" in r.output


def test_eval_can_score_one_half_of_the_corpus():
    r = run("eval", str(ROOT / "tests" / "corpus"), "--only", "even", "--no-misses")
    assert r.exit_code == 0 and r.output.startswith("540 labelled lines (even ids)")


def test_rules_lint_warns_about_phrases_that_repeat_or_never_match(tmp_path):
    (tmp_path / "terms").mkdir()
    (tmp_path / "terms" / "en.yaml").write_text(
        "language: en\nterms:\n  mine: [off-label, off label, '💊', 'took ... ', 'hair ... fall* out']\n",
        encoding="utf-8")
    r = CliRunner().invoke(main, ["rules", "lint", "--rules", str(tmp_path)])
    assert r.exit_code == 0
    assert "'off label' in 'mine' (en) repeats 'off-label'" in r.stderr
    assert "'💊' in 'mine' (en) can never match" in r.stderr and "'took ... ' in 'mine'" in r.stderr
    assert "'*' inside 'fall* out' is a literal '*'" in r.stderr and "write 'hair ... fall* ... out'" in r.stderr
