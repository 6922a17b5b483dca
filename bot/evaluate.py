"""Precision, recall and F1 against labelled lines, per category and for drug names.

A labelled line carries `drugs` (canonical generics) and `categories`; lines tagged `evasion`
also count toward the evasion recall (drug names found in disguised spellings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .engine import screen
from .models import Category, Message, ReplyContext
from .ruleset import RuleSet

CATEGORIES = [c.value for c in Category]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Miss:
    id: str
    text: str
    what: str


@dataclass
class Evaluation:
    lines: int = 0
    scores: dict[str, Score] = field(default_factory=lambda: {k: Score() for k in ["drugs", *CATEGORIES, "evasion"]})
    misses: list[Miss] = field(default_factory=list)


def evaluate(lines: list[dict], rs: RuleSet, select: Callable[[dict], bool] | None = None) -> Evaluation:
    """Score every line, or only those `select` accepts (the others still give replies their parent)."""
    ev = Evaluation()
    texts: dict[str, str] = {}
    for n, obj in enumerate(lines, start=1):
        rid = str(obj.get("id", n))
        texts[rid] = obj["text"]
        if select is not None and not select(obj):
            continue
        ev.lines += 1
        reply = obj.get("reply_to")
        msg = Message(
            text=obj["text"],
            message_id=rid,
            language=obj.get("lang"),
            reply_to=ReplyContext(message_id=str(reply), text=texts.get(str(reply), "")) if reply else None,
        )
        v = screen(msg, rs)
        gold_drugs, got_drugs = set(obj.get("drugs", [])), set(v.drug_names)
        _count(ev.scores["drugs"], gold_drugs, got_drugs)
        if "evasion" in obj.get("tags", []):
            _count(ev.scores["evasion"], gold_drugs, got_drugs & gold_drugs)
        for d in sorted(gold_drugs - got_drugs):
            ev.misses.append(Miss(rid, obj["text"], f"missed drug {d}"))
        for d in sorted(got_drugs - gold_drugs):
            ev.misses.append(Miss(rid, obj["text"], f"extra drug {d}"))
        gold_cats, got_cats = set(obj.get("categories", [])), set(v.categories)
        for c in CATEGORIES:
            _count(ev.scores[c], gold_cats & {c}, got_cats & {c})
        for c in sorted(gold_cats - got_cats):
            ev.misses.append(Miss(rid, obj["text"], f"missed {c}"))
        for c in sorted(got_cats - gold_cats):
            ev.misses.append(Miss(rid, obj["text"], f"extra {c}"))
    return ev


def id_parity(obj: dict) -> str | None:
    """'odd' or 'even' for an id that ends in a number ("en-017" is odd), else None."""
    digits = ""
    for ch in reversed(str(obj.get("id", ""))):
        if not ch.isdigit():
            break
        digits = ch + digits
    return None if not digits else ("odd" if int(digits) % 2 else "even")


def _count(score: Score, gold: set, got: set) -> None:
    score.tp += len(gold & got)
    score.fp += len(got - gold)
    score.fn += len(gold - got)


def load_labelled(paths: list[Path]) -> list[dict]:
    out = []
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for f in files:
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{f}:{n}: invalid JSON ({exc.msg})") from exc
    return out
