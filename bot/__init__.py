"""pharmamod's core: screen a `Message` against a `RuleSet` and get a `Verdict`.

    from bot import Message, load_ruleset, screen
    rules = load_ruleset()                       # the shipped packs, or load_ruleset(Path("my-rules"))
    verdict = screen(Message(text="since I started ozempic I throw up"), rules)
    verdict.action, verdict.categories, verdict.adverse_event

Data flows one way: adapters build Messages, the engine (pure, no I/O) returns Verdicts, and
the case, audit and pharmacovigilance code acts on them.
"""

from .engine import screen
from .models import (
    Action,
    AdverseEvent,
    Author,
    Category,
    DrugFound,
    Hit,
    Message,
    Note,
    Patient,
    ReplyContext,
    Route,
    Seriousness,
    Severity,
    Verdict,
)
from .packs.errors import RuleFileError, RuleIssue
from .ruleset import RuleSet, load_ruleset

__all__ = [
    "Action",
    "AdverseEvent",
    "Author",
    "Category",
    "DrugFound",
    "Hit",
    "Message",
    "Note",
    "Patient",
    "ReplyContext",
    "Route",
    "RuleFileError",
    "RuleIssue",
    "RuleSet",
    "Seriousness",
    "Severity",
    "Verdict",
    "load_ruleset",
    "screen",
]
