"""The shape of rule packs, term lists, lexicons and community profiles, as pydantic models.

Unknown keys are rejected (`extra="forbid"`) so that a typo like `severty:` is reported with its
location and a "did you mean" instead of being silently ignored.

Resolution order of a rule's settings, the answer to "why did this fire here?":

1. the community profile's override for that rule id, if set (an owner tunes shipped packs
   without editing them);
2. else the rule's own value;
3. else the pack's `defaults`;
4. else the built-in default below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..models import Category, Severity

Status = Literal["active", "test", "deprecated"]
ActionName = Literal["hold", "route_pv", "route_medinfo", "notify_author", "log_only"]
Audience = Literal["public", "patients", "caregivers", "hcp_verified"]
Situation = Literal[
    "pregnancy",
    "breastfeeding",
    "overdose",
    "misuse",
    "abuse",
    "medication_error",
    "lack_of_efficacy",
    "off_label",
    "product_complaint",
    "occupational_exposure",
]
LANGUAGES = ("en", "nl", "fr", "de", "es")
MATCH_KINDS = ("drugs", "lexicon", "terms", "phrases", "regex", "all", "any", "not", "near", "question")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Near(_Strict):
    """All parts found within `within` words of the first part's hits."""

    within: int = Field(8, ge=1, le=100)
    of: list["Match"] = Field(min_length=2)


class Guard(_Strict):
    """Drop a hit when a cue from these term lists stands up to `within` words before (or after) it."""

    terms: str | list[str]
    within: int = Field(3, ge=1, le=20)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.terms,) if isinstance(self.terms, str) else tuple(self.terms)


class Match(_Strict):
    """One node of a match tree: exactly one of the kinds below.

    drugs: named (lexicon), implied ("my injection", or a drug named in the parent message), any.
    lexicon: medicines named from these lexicons only, by id (an owner file's `id`, a registry
    file's name such as `fr_bdpm`, or `drug-named-entity-recognition`): "our products".
    terms: named term lists from rules/terms/<lang>.yaml.  phrases: inline phrases.
    regex: an RE2 pattern (linear time) on the folded text.  all / any / not / near: combinators.
    question: the message asks something (a "?" or a question opener of its language).
    negation: drop hits with a negation cue ("no", "pas de", "kein") up to 3 words before.
    unless_preceded_by: drop hits preceded by other cues, e.g. an indication ("for my anxiety") or
    a condition ("if you get nauseous"); `negation: true` is `unless_preceded_by: [{terms: negation}]`.
    unless_followed_by: drop hits followed by cues, e.g. an improvement ("the eczema is so much better").
    """

    drugs: Literal["named", "implied", "any"] | None = None
    lexicon: str | list[str] | None = None
    terms: str | list[str] | None = None
    phrases: list[str] | None = None
    regex: str | None = None
    all: list["Match"] | None = None
    any: list["Match"] | None = None
    not_: "Match | None" = Field(None, alias="not")
    near: Near | None = None
    question: bool | None = None
    negation: bool = False
    unless_preceded_by: list[Guard] = []
    unless_followed_by: list[Guard] = []

    @model_validator(mode="after")
    def _one_kind(self) -> "Match":
        kinds = [k for k in MATCH_KINDS if getattr(self, "not_" if k == "not" else k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a match block needs exactly one of {', '.join(MATCH_KINDS)}; found "
                f"{', '.join(kinds) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in MATCH_KINDS if getattr(self, "not_" if k == "not" else k) is not None)


class Scope(_Strict):
    """Where a rule applies; None means everywhere."""

    communities: list[str] | None = None
    channels: list[str] | None = None
    platforms: list[str] | None = None
    audience: list[Audience] | None = None
    jurisdictions: list[Literal["EU", "US", "UK", "CH", "CA", "OTHER"]] | None = None


class Exceptions(_Strict):
    """When a rule that matched is let go: allowlisted words in the hit, or an exempt author role."""

    allow: list[str] = []
    roles: list[str] = []


class RuleTests(_Strict):
    fire: list[str] = []
    pass_: list[str] = Field([], alias="pass")


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    title: str
    description: str = ""
    category: Category
    severity: Severity | None = None
    status: Status | None = None
    languages: list[Literal["en", "nl", "fr", "de", "es"]] | None = None
    priority: int | None = None
    match: Match
    situation: Situation | None = None
    explain: str | None = None
    scope: Scope | None = None
    exceptions: Exceptions | None = None
    actions: list[ActionName] | None = None
    notify: dict[str, str] | None = None
    tests: RuleTests = RuleTests()


class PackDefaults(_Strict):
    severity: Severity = Severity.MEDIUM
    status: Status = "active"
    languages: list[Literal["en", "nl", "fr", "de", "es"]] = list(LANGUAGES)
    priority: int = 100
    actions: list[ActionName] = ["hold"]
    scope: Scope = Scope()
    notify: dict[str, str] = {}


class Pack(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    title: str
    description: str = ""
    version: str = "1"
    includes: list[str] = []
    defaults: PackDefaults = PackDefaults()
    rules: list[Rule] = []


class TermFile(_Strict):
    language: Literal["en", "nl", "fr", "de", "es"]
    terms: dict[str, list[str]]

    @field_validator("terms")
    @classmethod
    def _names(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"term list name {name!r} must be letters, digits and underscores")
        return v


class LexiconItem(_Strict):
    name: str
    generic: str | None = None
    kind: Literal["brand", "ingredient", "street", "product", "misspelling"] = "brand"
    countries: list[str] = []
    ambiguous: bool = False


class LexiconFile(_Strict):
    id: str
    description: str = ""
    attribution: str = ""
    entries: list[LexiconItem] = []
    never: list[str] = Field([], description="words that are never a medicine name here")
    ambiguous: list[str] = Field([], description="names that need medicine context nearby")
    always: list[str] = Field([], description="common words that are medicine names first")
    rename: dict[str, str] = Field({}, description="canonical name -> preferred canonical name(s), '; '-separated")


class RuleOverride(_Strict):
    status: Status | None = None
    severity: Severity | None = None
    actions: list[ActionName] | None = None
    notify: dict[str, str] | None = None


class Profile(_Strict):
    """A community's choice of packs, audience and jurisdiction, with per-rule overrides."""

    id: str
    packs: list[str]
    audience: Audience = "public"
    jurisdiction: Literal["EU", "US", "UK", "CH", "CA", "OTHER"] = "EU"
    disabled: list[str] = []
    overrides: dict[str, RuleOverride] = {}
    notify_authors: bool = True


Near.model_rebuild()
Match.model_rebuild()
