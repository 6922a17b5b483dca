"""`rules test` and `rules lint`: the examples each rule carries, and checks across packs.

Validators return issues as data, so the CLI can print them all in one pass and tests can
assert on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import screen
from ..models import Message
from ..normalize import fold
from .errors import Location, RuleIssue
from ..ruleset import RuleSet


@dataclass(frozen=True)
class TestFailure:
    rule: str
    location: str
    text: str
    expected: str  # "fire" | "pass"

    def __str__(self) -> str:
        verb = "should fire on" if self.expected == "fire" else "should not fire on"
        return f"{self.location}: rule {self.rule} {verb} {self.text!r}"


def run_rule_tests(rs: RuleSet) -> tuple[int, list[TestFailure]]:
    """Run every rule's own `tests:` examples; return (examples run, failures)."""
    run = 0
    failures: list[TestFailure] = []
    for rule in rs.rules:
        if rule.status == "deprecated":
            continue
        for expected, texts in (("fire", rule.rule.tests.fire), ("pass", rule.rule.tests.pass_)):
            for text in texts:
                run += 1
                verdict = screen(Message(text=text), rs)
                fired = any(h.rule == rule.rule.id for h in verdict.hits)
                if fired != (expected == "fire"):
                    failures.append(TestFailure(rule.rule.id, str(rule.source), text, expected))
    return run, failures


def lint(rs: RuleSet) -> list[RuleIssue]:
    """Warnings about rules that load but will surprise their owner."""
    issues: list[RuleIssue] = list(getattr(rs, "issues", []))
    langs_per_list = rs.term_languages
    all_langs = set().union(*langs_per_list.values()) if langs_per_list else set()
    for name, langs in sorted(langs_per_list.items()):
        missing = sorted(all_langs - langs)
        if missing:
            issues.append(RuleIssue(Location(rs.files[0].parent), f"term list {name!r} has no entries for {', '.join(missing)}",
                                    "add it to terms/<lang>.yaml", "warning"))
    issues.extend(_phrase_issues(rs))
    for rule in rs.rules:
        r = rule.rule
        if not r.tests.fire:
            issues.append(RuleIssue(rule.source, f"rule {r.id} has no `tests: fire:` examples",
                                    "add messages that must fire it", "warning"))
        if "notify_author" in rule.actions:
            missing = sorted(set(rule.languages) - set(rule.notify))
            if missing:
                issues.append(RuleIssue(rule.source, f"rule {r.id} notifies authors but has no template for {', '.join(missing)}",
                                        "add notify: texts for those languages", "warning"))
        if r.status == "deprecated":
            issues.append(RuleIssue(rule.source, f"rule {r.id} is deprecated", "remove it when no profile needs it", "warning"))
    return issues


def _phrase_issues(rs: RuleSet) -> list[RuleIssue]:
    """Phrases that can never match (nothing left after folding, an empty part around `...`) and
    phrases listed twice in one list once folded ("Übelkeit" and "ubelkeit")."""
    files = {p.stem: p for p in rs.files if p.parent.name == "terms"}
    issues = []
    for list_id, phrases in rs.phrases.lists.items():
        kind, _, rest = list_id.partition(":")
        lang, _, name = rest.partition(":")
        where = Location(files.get(lang, rs.files[0].parent)) if kind == "terms" else Location(list_id)
        label = f"{name!r} ({lang})" if kind == "terms" else list_id
        seen: dict[str, str] = {}
        for phrase in phrases:
            parts = [fold(p.strip().rstrip("*")) for p in str(phrase).split("...")]
            if not all(parts):
                issues.append(RuleIssue(where, f"phrase {phrase!r} in {label} can never match",
                                        "it is empty once folded, or has an empty part around '...'", "warning"))
                continue
            inner = next((p.strip() for p in str(phrase).split("...") if "*" in p.strip().rstrip("*")), None)
            if inner is not None:
                head, _, tail = inner.partition("*")
                fix = "'*' works at the end of a phrase or part only"
                if head.strip() and tail.strip() and not head.endswith(" ") and "*" not in tail.rstrip("*"):
                    fix += f": write {str(phrase).replace(inner, f'{head}* ... {tail.strip()}')!r}"
                else:
                    fix += ": remove it, or end a word with it"
                issues.append(RuleIssue(where, f"phrase {phrase!r} in {label}: '*' inside {inner!r} is a literal '*'",
                                        fix, "warning"))
            key = " ... ".join(parts) + ("*" if str(phrase).endswith("*") else "")
            if key in seen:
                issues.append(RuleIssue(where, f"phrase {phrase!r} in {label} repeats {seen[key]!r}",
                                        "remove one: they fold to the same text", "warning"))
            seen.setdefault(key, phrase)
    return issues
