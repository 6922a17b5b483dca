"""Pharmacovigilance cases: what a drug-safety team receives when a post tells an adverse event or a
special situation. Pure: built from a message and its verdict, written to the store by `cases`.

The four minimum criteria of a valid case (GVP VI.B.2) are each marked present or missing with the
evidence, because a case missing one is still stored and followed up, never dropped. Day zero is
the moment the bot first saw the post; deadlines count from it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from .models import Category, Message, Patient, Seriousness, Verdict

# Days from day zero to the report deadline, by jurisdiction and seriousness (GVP VI.C.3; 21 CFR
# 314.80). None: no expedited deadline (US non-serious reports go in periodic reports).
DEFAULT_DEADLINES: dict[str, dict[str, int | None]] = {
    "EU": {"serious": 15, "non_serious": 90},
    "UK": {"serious": 15, "non_serious": 90},
    "CH": {"serious": 15, "non_serious": 90},
    "CA": {"serious": 15, "non_serious": None},
    "US": {"serious": 15, "non_serious": None},
    "OTHER": {"serious": 15, "non_serious": 90},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Criterion(_Frozen):
    """One of the four minimum criteria: present or missing, and what in the post says so."""

    present: bool
    evidence: str


class Criteria(_Frozen):
    reporter: Criterion
    patient: Criterion
    suspect_drug: Criterion
    event: Criterion

    @property
    def complete(self) -> bool:
        return all(c.present for c in (self.reporter, self.patient, self.suspect_drug, self.event))

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(n for n in ("reporter", "patient", "suspect_drug", "event") if not getattr(self, n).present)


class Reporter(_Frozen):
    """The primary source (E2B C.2.r): a platform account, a consumer unless the community says otherwise."""

    platform: str
    account_id: str
    display_name: str = ""
    contactable: bool
    qualification: Literal["consumer", "physician", "pharmacist", "other_hcp", "lawyer"] = "consumer"
    country: str = ""


class SuspectDrug(_Frozen):
    as_reported: str
    canonical: str = ""


class Deadline(_Frozen):
    authority: str
    days: int
    due: datetime


class PVCase(_Frozen):
    """An individual case safety report as far as one post tells it; E2B(R3) is built from this."""

    report_id: str  # C.1.1, the sender's unique id: stable for one message
    kinds: tuple[Literal["adverse_event", "special_situation"], ...]
    platform: str
    community: str
    channel: str = ""
    message_id: str
    permalink: str | None = None
    day_zero: datetime  # C.1.4, first seen by the bot; never changes
    reporter: Reporter
    patient: Patient = Patient.UNKNOWN
    suspect_drugs: tuple[SuspectDrug, ...] = ()
    events: tuple[str, ...] = ()  # as reported, in the poster's language
    language: str | None = None
    seriousness: Seriousness = Seriousness()
    seriousness_cues: tuple[str, ...] = ()
    special_situations: tuple[str, ...] = ()
    solicited: bool = False  # C.1.3: 1 spontaneous, 2 report from study / organised data collection
    jurisdiction: str = "EU"
    country: str = ""
    deadlines: tuple[Deadline, ...] = ()
    criteria: Criteria
    narrative: str = ""  # H.1: the post text and its permalink
    rules: tuple[str, ...] = ()
    ruleset_version: str = ""

    @property
    def serious(self) -> bool:
        return self.seriousness.serious

    @property
    def due(self) -> datetime | None:
        return min((d.due for d in self.deadlines), default=None)


def report_id(sender: str, platform: str, message_id: str) -> str:
    """C.1.1 must be unique per sender and stable, so a redelivered post maps to the same case.
    Percent-encoding keeps it one-to-one ("post 7" and "post_7" are different posts)."""
    return f"{quote(sender, safe='')}-{quote(platform, safe='')}-{quote(message_id, safe=':~')}"


def deadlines(jurisdiction: str, serious: bool, day_zero: datetime,
              table: dict[str, dict[str, int | None]] | None = None) -> tuple[Deadline, ...]:
    table = table or DEFAULT_DEADLINES
    row = table.get(jurisdiction) or table.get("OTHER") or DEFAULT_DEADLINES["OTHER"]
    days = row.get("serious" if serious else "non_serious")
    if days is None:
        return ()
    return (Deadline(authority=jurisdiction, days=days, due=day_zero + timedelta(days=days)),)


def is_pv(verdict: Verdict) -> bool:
    cats = verdict.categories
    return Category.ADVERSE_EVENT.value in cats or Category.SPECIAL_SITUATION.value in cats


def build_pv_case(
    message: Message,
    verdict: Verdict,
    day_zero: datetime,
    *,
    sender: str = "pharmamod",
    country: str = "",
    solicited: bool = False,
    contactable: bool = True,
    table: dict[str, dict[str, int | None]] | None = None,
) -> PVCase:
    """The PV case a post opens; call only when `is_pv(verdict)`."""
    ae = verdict.adverse_event
    kinds = tuple(k for k in ("adverse_event", "special_situation") if k in verdict.categories)
    account = message.author.id or message.author.display_name
    reporter = Reporter(platform=message.platform, account_id=account, display_name=message.author.display_name,
                        contactable=bool(account) and contactable, country=country)
    suspects: list[SuspectDrug] = []
    if ae is not None:
        reported = list(ae.suspect_as_reported)
        canon = list(ae.suspect_drugs)
        for i in range(max(len(reported), len(canon))):
            suspects.append(SuspectDrug(as_reported=reported[i] if i < len(reported) else canon[i],
                                        canonical=canon[i] if i < len(canon) else ""))
    patient = ae.patient if ae else Patient.UNKNOWN
    events = ae.events if ae else ()
    situations = verdict.special_situations
    serious = ae.seriousness if ae else Seriousness()

    if reporter.contactable:
        rep = Criterion(present=True, evidence=f"{message.platform} account {account!r}, can be contacted there")
    else:
        rep = Criterion(present=False, evidence="no platform account to contact")
    if patient is not Patient.UNKNOWN:
        pat = Criterion(present=True, evidence=f"the post is about: {patient.value}")
    else:
        pat = Criterion(present=False, evidence="the post does not say who took the medicine")
    if suspects:
        drug = Criterion(present=True, evidence=", ".join(
            s.as_reported + (f" ({s.canonical})" if s.canonical and s.canonical != s.as_reported else "") for s in suspects))
    else:
        drug = Criterion(present=False, evidence="no medicine named or implied")
    if events:
        event = Criterion(present=True, evidence=", ".join(events))
    elif situations:
        # A special situation is reportable without harm; the situation stands in for the reaction.
        event = Criterion(present=True, evidence="special situation: " + ", ".join(situations))
    else:
        event = Criterion(present=False, evidence="no event term found; read the post")

    narrative = message.text + (f"\n\n{message.permalink}" if message.permalink else "")
    return PVCase(
        report_id=report_id(sender, message.platform, message.message_id),
        kinds=kinds,
        platform=message.platform,
        community=message.community,
        channel=message.channel,
        message_id=message.message_id,
        permalink=message.permalink,
        day_zero=day_zero,
        reporter=reporter,
        patient=patient,
        suspect_drugs=tuple(suspects),
        events=events,
        language=verdict.language,
        seriousness=serious,
        seriousness_cues=ae.seriousness_cues if ae else (),
        special_situations=situations,
        solicited=solicited,
        jurisdiction=message.jurisdiction or "EU",
        country=country,
        deadlines=deadlines(message.jurisdiction or "EU", serious.serious, day_zero, table),
        criteria=Criteria(reporter=rep, patient=pat, suspect_drug=drug, event=event),
        narrative=narrative,
        rules=tuple(dict.fromkeys(h.rule for h in verdict.hits if h.category.value in kinds)),
        ruleset_version=verdict.ruleset_version,
    )
