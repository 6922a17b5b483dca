"""The values that cross the engine boundary: a `Message` in, a `Verdict` out.

Both are frozen pydantic models so that adapters, the engine and the case store can pass them
around without defensive copies, and tests can compare verdicts as plain values.  Nothing here
knows about a chat platform: adapters translate their own objects into these at the edge.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict


class Category(str, Enum):
    """What a rule looks for; the five categories of the public scan contract."""

    DRUG_MENTION = "drug_mention"
    PRESCRIPTION_ADVICE = "prescription_advice"
    ADVERSE_EVENT = "adverse_event"
    SPECIAL_SITUATION = "special_situation"
    MEDICAL_INQUIRY = "medical_inquiry"


class Action(str, Enum):
    """What to do with a message; `Verdict.action` is the strongest disposition of all hits."""

    ALLOW = "allow"
    HOLD = "hold"


class Route(str, Enum):
    """Where a message must be sent onward, independent of whether it is held."""

    PHARMACOVIGILANCE = "pharmacovigilance"
    MEDICAL_INFORMATION = "medical_information"


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


_new, _set = object.__new__, object.__setattr__  # BaseModel defines neither


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def trusted(cls, **fields):
        """Build from values that are already valid (the engine's own output), skipping validation.

        pydantic's `model_construct` does the same but costs several microseconds per call, which
        the engine pays for every hit; every field must be given.
        """
        obj = _new(cls)
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_fields_set__", set(fields))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj


class Author(_Frozen):
    id: str = ""
    display_name: str = ""
    roles: tuple[str, ...] = ()


class ReplyContext(_Frozen):
    """The message this one answers, so a reply like "it gives me rashes" knows which drug "it" is."""

    message_id: str = ""
    text: str = ""


class Message(_Frozen):
    platform: str = "local"
    community: str = ""
    channel: str = ""
    message_id: str = ""
    author: Author = Author()
    text: str
    created_at: datetime | None = None
    language: str | None = None
    reply_to: ReplyContext | None = None
    permalink: str | None = None
    audience: str = "public"
    jurisdiction: str | None = None


class Hit(_Frozen):
    """One rule that fired, on one span of the original text."""

    rule: str
    category: Category
    severity: Severity
    span: tuple[int, int]
    text: str
    explanation: str
    status: str = "active"


class DrugFound(_Frozen):
    """A medicine named in the text; `how` tells a reviewer why a misspelt or disguised name matched."""

    canonical: str
    surface: str
    span: tuple[int, int]
    matched: str
    how: str  # exact | spelling | evasion | thread | implied


class Patient(str, Enum):
    SELF = "self"
    CHILD = "child"
    PARENT = "parent"
    OTHER = "other"
    UNKNOWN = "unknown"


class Seriousness(_Frozen):
    """The six E2B(R3) seriousness criteria, E.i.3.2a-f; a cue here is a hint for the safety team."""

    death: bool = False
    life_threatening: bool = False
    hospitalisation: bool = False
    disability: bool = False
    congenital_anomaly: bool = False
    other_medically_important: bool = False

    @property
    def serious(self) -> bool:
        return any(self.model_dump().values())


class AdverseEvent(_Frozen):
    """What a drug-safety team needs to open a case from a post, as far as the text says it."""

    suspect_drugs: tuple[str, ...] = ()
    suspect_as_reported: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    seriousness: Seriousness = Seriousness()
    seriousness_cues: tuple[str, ...] = ()
    patient: Patient = Patient.UNKNOWN


class Note(_Frozen):
    """Something the engine decided not to flag, kept so that the decision is explained, not silent."""

    span: tuple[int, int]
    text: str
    explanation: str


class Verdict(_Frozen):
    action: Action = Action.ALLOW
    hits: tuple[Hit, ...] = ()
    drugs: tuple[DrugFound, ...] = ()
    routes: tuple[Route, ...] = ()
    notify_author: str | None = None
    adverse_event: AdverseEvent | None = None
    special_situations: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()
    language: str | None = None
    ruleset_version: str = ""

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories of active hits, sorted: what the scan contract calls `categories`."""
        return tuple(sorted({h.category.value for h in self.hits if h.status == "active"}))

    @property
    def drug_names(self) -> tuple[str, ...]:
        return tuple(sorted({d.canonical for d in self.drugs if d.how not in ("implied", "thread")}))

    @property
    def held(self) -> bool:
        return self.action is Action.HOLD


