"""Batch screening of a community export: read records, screen each, write one JSON line each.

The output line format is a public contract (README, "Scan output"): one line per input line, in
order, `{"id", "action", "categories", "drugs", "hits", ...}` or, for a line that could not be
read, `{"id", "line", "error"}`.  A bad line never stops the scan.
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydantic import ValidationError

from .engine import screen
from .models import Author, Message, ReplyContext, Verdict
from .ruleset import RuleSet

TEXT_COLUMNS = ("text", "body", "message", "content", "comment")
THREAD_MEMORY = 10_000  # recent messages kept so that replies know their parent's text


@dataclass
class Record:
    line: int
    id: Any = None
    message: Message | None = None
    error: str | None = None


@dataclass
class Summary:
    lines: int = 0
    errors: int = 0
    held: int = 0
    categories: dict[str, int] = field(default_factory=dict)

    def add(self, verdict: Verdict) -> None:
        self.lines += 1
        if verdict.held:
            self.held += 1
        for c in verdict.categories:
            self.categories[c] = self.categories.get(c, 0) + 1


def _message(obj: dict, line: int, parents: "OrderedDict[str, str]") -> Message:
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no text: each line needs a non-empty string field 'text'")
    author = obj.get("author")
    if isinstance(author, str):
        author = Author(id=author, display_name=author)
    elif isinstance(author, dict):
        author = Author(**{k: v for k, v in author.items() if k in ("id", "display_name", "roles")})
    else:
        author = Author()
    reply = obj.get("reply_to")
    reply_ctx = None
    if reply not in (None, ""):
        reply_ctx = ReplyContext(message_id=str(reply), text=parents.get(str(reply), ""))
    return Message(
        platform=str(obj.get("platform") or "local"),
        community=str(obj.get("community") or ""),
        channel=str(obj.get("channel") or ""),
        message_id=str(obj.get("id", line)),
        author=author,
        text=text,
        created_at=obj.get("created_at") or None,
        language=obj.get("lang") or obj.get("language") or None,
        reply_to=reply_ctx,
    )


def _records(objects: Iterable[tuple[int, Any, str | None]]) -> Iterator[Record]:
    parents: OrderedDict[str, str] = OrderedDict()
    for line, obj, error in objects:
        if error is not None:
            yield Record(line, None, error=error)
            continue
        rid = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(obj, dict):
            yield Record(line, None, error="not a JSON object")
            continue
        try:
            msg = _message(obj, line, parents)
        except ValidationError as exc:
            first = exc.errors()[0]
            yield Record(line, rid, error=f"invalid field {'.'.join(map(str, first['loc']))}: {first['msg']}")
            continue
        except (ValueError, TypeError) as exc:
            yield Record(line, rid, error=str(exc))
            continue
        parents[msg.message_id] = msg.text
        if len(parents) > THREAD_MEMORY:
            parents.popitem(last=False)
        yield Record(line, rid, message=msg)


def read_jsonl(stream: BinaryIO) -> Iterator[Record]:
    def objects():
        for n, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield n, None, f"invalid UTF-8 at byte {exc.start}"
                continue
            if not text.strip():
                yield n, None, "empty line"
                continue
            try:
                yield n, json.loads(text), None
            except json.JSONDecodeError as exc:
                yield n, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
            except RecursionError:
                yield n, None, "invalid JSON: nested too deeply"

    return _records(objects())


def read_csv(stream: BinaryIO) -> Iterator[Record]:
    def objects():
        wrapper = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.DictReader(wrapper)
        fields = [f.lower() for f in (reader.fieldnames or [])]
        column = next((reader.fieldnames[fields.index(c)] for c in TEXT_COLUMNS if c in fields), None)
        if column is None:
            yield 1, None, f"no text column: name one of {', '.join(TEXT_COLUMNS)} in the header"
            return
        for row in reader:
            n = reader.line_num
            values = {k.lower(): v for k, v in row.items() if k is not None}
            if any("\udc80" <= ch <= "\udcff" for v in values.values() if isinstance(v, str) for ch in v):
                yield n, None, "invalid UTF-8"
                continue
            values["text"] = row.get(column)
            yield n, values, None

    return _records(objects())


def verdict_line(record_id: Any, verdict: Verdict) -> dict:
    """The public JSONL shape of one screened message."""
    out: dict[str, Any] = {
        "id": record_id,
        "action": verdict.action.value,
        "categories": list(verdict.categories),
        "drugs": list(verdict.drug_names),
        "hits": [
            {"rule": h.rule, "category": h.category.value, "span": list(h.span), "text": h.text}
            for h in verdict.hits
            if h.status == "active"
        ],
        "routes": [r.value for r in verdict.routes],
        "language": verdict.language,
    }
    if verdict.special_situations:
        out["special_situations"] = list(verdict.special_situations)
    if verdict.adverse_event is not None:
        ae = verdict.adverse_event
        out["adverse_event"] = {
            "suspect_drugs": list(ae.suspect_drugs),
            "events": list(ae.events),
            "serious": ae.seriousness.serious,
            "seriousness": [k for k, v in ae.seriousness.model_dump().items() if v],
            "patient": ae.patient.value,
        }
    tests = [h.rule for h in verdict.hits if h.status == "test"]
    if tests:
        out["test_rules"] = sorted(set(tests))
    return out


def scan(records: Iterable[Record], rs: RuleSet, summary: Summary) -> Iterator[dict]:
    """Screen records in order; yield the output line of each, errors included."""
    for rec in records:
        if rec.message is None:
            summary.errors += 1
            yield {"id": rec.id, "line": rec.line, "error": rec.error}
            continue
        verdict = screen(rec.message, rs)
        summary.add(verdict)
        yield verdict_line(rec.id if rec.id is not None else rec.line, verdict)
