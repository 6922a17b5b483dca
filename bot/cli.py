"""The `pharmamod` command: a thin layer over the library, one function call per command.

Known errors become one `Error: ...` line that says how to fix it, and exit code 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .engine import screen
from .models import Message
from .packs.errors import RuleFileError
from .ruleset import RuleSet, load_ruleset, settle

rules_option = click.option(
    "--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Rules folder with packs/, terms/, lexicons/, profiles/ (default: the shipped rules).",
)


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        rs = load_ruleset(rules_dir)
        settle()
        return rs
    except RuleFileError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise click.ClickException(
            f"{len(exc.issues)} problem(s) in the rule files; fix them (run `pharmamod rules lint`)"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pharmamod")
def main() -> None:
    """Screen patient-community messages for medicine names, advice, adverse events,
    special situations and medical inquiries.

    Example: pharmamod check "since I started ozempic I throw up every morning"
    """


@main.command()
@click.argument("text")
@click.option("--lang", help="Language of the text (en, nl, fr, de, es); guessed when omitted.")
@click.option("--json", "as_json", is_flag=True, help="Print the full verdict as JSON.")
@rules_option
def check(text: str, lang: str | None, as_json: bool, rules_dir: Path | None) -> None:
    """Screen one message and explain the verdict.

    Example: pharmamod check "just take 400mg of ibuprofen three times a day"
    """
    rs = _load(rules_dir)
    verdict = screen(Message(text=text, language=lang), rs)
    if as_json:
        click.echo(verdict.model_dump_json(indent=2))
        return
    colour = "red" if verdict.held else "green"
    click.echo(click.style(verdict.action.value.upper(), fg=colour, bold=True)
               + f"  categories: {', '.join(verdict.categories) or '-'}  language: {verdict.language or '?'}")
    click.echo("  " + _highlight(text, [h.span for h in verdict.hits if h.status == "active"]))
    for h in verdict.hits:
        tag = "" if h.status == "active" else f" [{h.status}: logged only]"
        click.echo(f"  - {h.rule} ({h.category.value}, {h.severity.value}){tag}: "
                   f"{text[h.span[0]:h.span[1]]!r} at {h.span[0]}-{h.span[1]}: {h.explanation}")
    for d in verdict.drugs:
        how = {"exact": "", "spelling": " (spelling variant)", "evasion": " (disguised)",
               "thread": " (named in the parent message)"}.get(d.how, f" ({d.how})")
        click.echo(f"  drug: {d.canonical} <- {d.surface!r}{how}")
    if verdict.routes:
        click.echo(f"  routes: {', '.join(r.value for r in verdict.routes)}")
    if verdict.adverse_event:
        ae = verdict.adverse_event
        serious = [k for k, v in ae.seriousness.model_dump().items() if v]
        click.echo(f"  adverse event: suspect {', '.join(ae.suspect_drugs) or '?'}; events {', '.join(ae.events) or '?'}; "
                   f"patient {ae.patient.value}; serious: {', '.join(serious) or 'no cue'}")
    if verdict.special_situations:
        click.echo(f"  special situations: {', '.join(verdict.special_situations)}")
    for n in verdict.notes:
        click.echo(f"  note: {n.explanation}")
    if verdict.notify_author:
        from .cases import render_notice

        click.echo(f"  author notice: {render_notice(verdict.notify_author)}")


def _highlight(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for s, e in sorted(spans):
        if s < pos:
            s = pos
        if e <= s:
            continue
        out.append(text[pos:s])
        out.append(click.style(text[s:e], fg="yellow", bold=True, underline=True))
        pos = e
    out.append(text[pos:])
    return "".join(out)


@main.command()
@click.argument("input", type=click.Path(allow_dash=True, dir_okay=False, path_type=str))
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Where to write the JSONL verdicts (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto",
              help="Input format; auto uses the file extension (.csv) and JSONL otherwise.")
@rules_option
def scan(input: str, output: str, fmt: str, rules_dir: Path | None) -> None:
    """Screen a community export (JSONL with `text`, or CSV with a text column; `-` for stdin).

    Writes one JSON line per input line, in order, and a summary on stderr.

    Example: pharmamod scan examples/community.jsonl --output verdicts.jsonl
    """
    from .scan import Summary, read_csv, read_jsonl, scan as run_scan

    rs = _load(rules_dir)
    if input == "-":
        stream, size = sys.stdin.buffer, None
    else:
        try:
            stream = open(input, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise click.ClickException(f"cannot open {input}: {exc.strerror}") from None
        size = Path(input).stat().st_size
    is_csv = fmt == "csv" or (fmt == "auto" and input.lower().endswith(".csv"))
    records = read_csv(stream) if is_csv else read_jsonl(stream)
    out = click.open_file(output, "w", encoding="utf-8")
    summary = Summary()
    started = time.perf_counter()
    show_progress = size is not None and size > 1_000_000 and sys.stderr.isatty()
    try:
        lines = run_scan(records, rs, summary)
        if show_progress:
            with click.progressbar(length=size, label="screening", file=sys.stderr) as bar:
                last = 0
                for line in lines:
                    _write(out, line, summary)
                    pos = stream.tell() if stream.seekable() else last
                    bar.update(pos - last)
                    last = pos
        else:
            for line in lines:
                _write(out, line, summary)
    finally:
        if out is not sys.stdout:
            out.close()
        if stream is not sys.stdin.buffer:
            stream.close()
    elapsed = time.perf_counter() - started
    cats = ", ".join(f"{k} {v}" for k, v in sorted(summary.categories.items())) or "none"
    rate = summary.lines / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"screened {summary.lines} message(s) in {elapsed:.2f}s ({rate:,.0f}/s): held {summary.held}, "
        f"errors {summary.errors}; categories: {cats}",
        err=True,
    )


def _write(out, line: dict, summary) -> None:
    if "error" in line:
        click.echo(f"line {line['line']}: {line['error']} (skipped)", err=True)
    out.write(json.dumps(line, ensure_ascii=False) + "\n")


@main.command("eval")
@click.argument("labelled", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--misses/--no-misses", default=True, help="List the lines the rules got wrong.")
@click.option("--only", type=click.Choice(["odd", "even"]),
              help="Score only lines whose id ends in an odd or even number (tests/corpus: odd = tuning "
                   "half, even = held-out half); the others still give replies their parent.")
@rules_option
def eval_cmd(labelled: tuple[Path, ...], misses: bool, only: str | None, rules_dir: Path | None) -> None:
    """Precision, recall and F1 per category and for drug names against labelled JSONL.

    Example: pharmamod eval tests/corpus/ --only even
    """
    from .evaluate import evaluate, id_parity, load_labelled

    rs = _load(rules_dir)
    try:
        lines = load_labelled(list(labelled))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    select = None if only is None else (lambda obj: id_parity(obj) == only)
    ev = evaluate(lines, rs, select)
    click.echo(f"{ev.lines} labelled lines" + (f" ({only} ids)" if only else ""))
    click.echo(f"{'':22}{'precision':>10}{'recall':>10}{'F1':>8}{'tp':>6}{'fp':>6}{'fn':>6}")
    for name, s in ev.scores.items():
        label = "drug names" if name == "drugs" else ("evasion (drug names)" if name == "evasion" else name)
        click.echo(f"{label:22}{s.precision:10.3f}{s.recall:10.3f}{s.f1:8.3f}{s.tp:6}{s.fp:6}{s.fn:6}")
    if misses and ev.misses:
        click.echo(f"\n{len(ev.misses)} miss(es):")
        for m in ev.misses:
            click.echo(f"  {m.id}: {m.what}: {m.text[:140]!r}")


@main.group()
def rules() -> None:
    """Validate rule files and run the examples they carry."""


@rules.command("lint")
@rules_option
def rules_lint(rules_dir: Path | None) -> None:
    """Validate every rule file and report all problems at once, with file:line:column.

    Example: pharmamod rules lint --rules ./my-rules
    """
    from .packs.checks import lint

    try:
        rs = load_ruleset(rules_dir, collect_errors=True)
    except RuleFileError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise click.ClickException(f"{len(exc.issues)} error(s)") from None
    issues = lint(rs)
    errors = [i for i in issues if i.severity == "error"]
    for issue in issues:
        click.echo(str(issue), err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} error(s), {len(issues) - len(errors)} warning(s)")
    click.echo(f"ok: {len(rs.rules)} rules, {len(issues)} warning(s), rule set {rs.version}")


@rules.command("test")
@rules_option
def rules_test(rules_dir: Path | None) -> None:
    """Run the `tests:` examples of every rule (must fire / must pass).

    Example: pharmamod rules test
    """
    from .packs.checks import run_rule_tests

    rs = _load(rules_dir)
    run, failures = run_rule_tests(rs)
    for f in failures:
        click.echo(str(f), err=True)
    if failures:
        raise click.ClickException(f"{len(failures)} of {run} rule examples failed")
    click.echo(f"ok: {run} rule examples passed across {len(rs.rules)} rules")


def _register() -> None:
    from .cli_audit import audit_group
    from .cli_cases import outbox_group, review, run, status

    for command in (run, status, review, outbox_group, audit_group):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
