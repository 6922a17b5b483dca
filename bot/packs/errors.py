"""Errors in rule files, each pointing at file:line:column and saying how to fix it.

Community owners edit these files by hand; a bare pydantic traceback helps nobody.  Every
problem becomes a `RuleIssue` (a value, so `rules lint` can collect them all in one pass), and
loading for real raises `RuleFileError` carrying every issue found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    path: Path | str
    line: int = 0  # 1-based; 0 when unknown
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}"
        return str(self.path)


@dataclass(frozen=True)
class RuleIssue:
    location: Location
    message: str
    hint: str = ""
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class RuleFileError(ValueError):
    """One or more rule files are invalid; the rule set in force stays as it was."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
