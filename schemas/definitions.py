"""The shared definitions file: one versioned definition of channels, personas, scoring, stages,
SLAs and alert rules that sales and marketing both sign. Validated with precise errors.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml  # type: ignore[import-untyped]
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.alerts import ALERT_RULES
from schemas.decode import json_path
from schemas.errors import ConfigurationError
from schemas.events import ConversationOutcome, LeadStatus, RepRole
from schemas.timeline import CHANNELS

DEFAULT_PATH = Path(__file__).with_name("defaults") / "definitions.yaml"

Side = Literal["digital", "human", "crm"]
Team = Literal["marketing", "sales", "customer_success", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Strict):
    """How a channel counts: digital self-service or a 1:1 human conversation, and who owns it."""

    side: Side
    team: Team
    touch: bool = True
    """False for records that are not buyer touches (identity calls, CRM status rows)."""


class Persona(_Strict):
    name: str
    title_patterns: list[str] = Field(min_length=1)
    fit_points: float = 0

    @field_validator("title_patterns")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {p!r} ({exc})") from exc
        return patterns


class IcpRule(_Strict):
    """Fit points when a group (account) trait matches: numeric range or one of the values."""

    trait: str
    min: float | None = None
    max: float | None = None
    one_of: list[str] | None = None
    points: float

    @model_validator(mode="after")
    def _one_condition(self) -> "IcpRule":
        if self.one_of is None and self.min is None and self.max is None:
            raise ValueError("an ICP rule needs min, max or one_of")
        return self


class Scoring(_Strict):
    half_life_days: float = Field(gt=0)
    channel_points: dict[str, float]
    page_points: dict[str, float] = Field(default_factory=dict)
    """Extra points when a page path starts with the key (e.g. /pricing)."""
    engaged_contact_points: float = Field(ge=0)
    """A contact whose own decayed engagement reaches this is 'engaged' (buying committee)."""


class Condition(_Strict):
    """One way a stage is reached; all given fields must hold."""

    score_at_least: float | None = None
    lead_status: list[str] | None = None
    opportunity: list[Literal["created", "stage_changed", "closed_won", "closed_lost"]] | None = None
    conversation_outcome: list[str] | None = None

    @model_validator(mode="after")
    def _something(self) -> "Condition":
        if all(v is None for v in (self.score_at_least, self.lead_status, self.opportunity, self.conversation_outcome)):
            raise ValueError("a condition needs score_at_least, lead_status, opportunity or conversation_outcome")
        return self

    def describe(self) -> str:
        parts = []
        if self.score_at_least is not None:
            parts.append(f"score >= {self.score_at_least:g}")
        for name in ("lead_status", "opportunity", "conversation_outcome"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name} in {values}")
        return " and ".join(parts)


StageRole = Literal["qualified", "opportunity", "won", "lost"]
"""What a stage means to the reports and alerts, whatever its name: ``qualified`` (the MQL/MQA:
the handoff SLA clock and the lead-creation touch), ``opportunity`` (an open deal: the stalled-
deal timer, the opportunity-creation touch), ``won`` and ``lost`` (closed deals)."""

ROLE_DEFAULT_NAMES: dict[str, str] = {"qualified": "mql", "opportunity": "opportunity", "won": "won", "lost": "lost"}
"""A stage with this name takes the role when no stage declares it (definitions files written
before roles)."""


class Stage(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    """Lower case letters, digits and ``_`` (reports use it as a column name)."""
    rank: int = Field(ge=0)
    forward_only: bool = True
    """Score-driven stages only move an account forward; CRM facts (accepted, rejected, won)
    apply whenever they happen, so regressions and recycling are kept."""
    when: list[Condition] = Field(min_length=1)
    role: StageRole | None = None
    restarts_scoring: bool = False
    """Recycling: after the account enters this stage (a lead sales rejected or recycled),
    score conditions count only the engagement earned *after* it (plus fit), and only once there
    is some, so a lead does not re-qualify on the score that was just rejected. A CRM status
    (e.g. ``lead_status: [mql]``) still applies at once: that is a person's decision."""
    cooldown_days: float = Field(default=0, ge=0)
    """With ``restarts_scoring``: no score-driven stage change for this many days after entering
    the stage, whatever the new engagement."""


class Sla(_Strict):
    mql_first_touch_hours: float = Field(gt=0)
    """An MQL/MQA must get a 1:1 sales touch within this many hours."""


class ChannelBounce(_Strict):
    min_switches: int = Field(ge=1)
    window_days: float = Field(gt=0)
    evaluation_paths: list[str] = Field(default_factory=list)
    return_within_days: float = Field(gt=0)
    cooldown_hours: float = Field(ge=0)


WebhookUrl = Annotated[str, Field(pattern=r"^https?://[^\s/]+", max_length=2000)]
"""An http(s) URL that receives alerts (a Slack incoming webhook, or anything taking its JSON)."""


class AlertRoute(_Strict):
    """Send the alerts it matches to its webhooks: an alert matches when every filter given holds
    — its rule is in ``rules``, its owner in ``owners``, its owner in one of ``teams``. A route
    with no filter takes every alert."""

    name: str = ""
    """For people reading the file (``emea sales``); receivers are shown by redacted URL."""
    webhook_urls: list[WebhookUrl] = Field(min_length=1)
    rules: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    """Owner ids (the rep id an alert names as its owner)."""
    teams: list[str] = Field(default_factory=list)
    """Team names of ``alerts.teams``."""

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = sorted(set(rules) - set(ALERT_RULES))
        if unknown:
            raise ValueError(f"unknown alert rules: {', '.join(unknown)} (known: {', '.join(ALERT_RULES)})")
        return rules


class Alerts(_Strict):
    allowed_lateness_hours: float = Field(24, ge=0)
    """An event older than the account's newest by more than this raises no alert for the past."""
    channel_bounce: ChannelBounce
    missed_handoff_cooldown_hours: float = Field(ge=0)
    rejected_leads_rate: float = Field(gt=0, le=1)
    rejected_leads_min_mqls: int = Field(ge=1)
    rejected_leads_window_days: float = Field(gt=0)
    stalled_opportunity_days: float = Field(gt=0)
    committee_required_personas: list[str] = Field(default_factory=list)
    committee_from_stage: str = "sql"
    webhook_urls: list[WebhookUrl] = Field(default_factory=list)
    """Receivers of every alert."""
    teams: dict[str, list[str]] = Field(default_factory=dict)
    """Team name → the owner ids (rep ids) in it, for routes by team."""
    routes: list[AlertRoute] = Field(default_factory=list)
    """More receivers, by rule, owner or team (``webhook_urls`` still get every alert)."""

    @model_validator(mode="after")
    def _known_teams(self) -> "Alerts":
        for i, route in enumerate(self.routes):
            unknown = sorted(set(route.teams) - set(self.teams))
            if unknown:
                raise ValueError(f"routes[{i}] names teams not in alerts.teams: {', '.join(unknown)}")
        return self


BUILTIN_ATTRIBUTION_MODELS = ("first_touch", "last_touch", "lead_creation", "u_shaped", "w_shaped", "full_path",
                              "linear", "time_decay")
"""Attribution models the tracker ships (sinks/clickhouse/attribution.py); custom ones get other names."""


class PositionWeights(_Strict):
    """A position-based attribution model of your own: the share of won revenue credited to the
    first touch, the lead-creation touch (last touch at or before the MQL), the
    opportunity-creation touch and the last touch before the close; ``rest`` is shared equally by
    the other touches. A milestone that did not happen passes its share to the others. The five
    shares sum to 1."""

    first: float = Field(0, ge=0, le=1)
    lead: float = Field(0, ge=0, le=1)
    opportunity: float = Field(0, ge=0, le=1)
    last: float = Field(0, ge=0, le=1)
    rest: float = Field(0, ge=0, le=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "PositionWeights":
        total = self.first + self.lead + self.opportunity + self.last + self.rest
        if abs(total - 1) > 1e-6:
            raise ValueError(f"first + lead + opportunity + last + rest must be 1, not {total:g}")
        return self


class Attribution(_Strict):
    models: dict[str, PositionWeights] = Field(default_factory=dict)
    """Custom position-based models by name (``journeys attribution --model NAME``)."""

    @model_validator(mode="after")
    def _no_builtin_names(self) -> "Attribution":
        clash = sorted(set(self.models) & set(BUILTIN_ATTRIBUTION_MODELS))
        if clash:
            raise ValueError(f"model names already taken by built-in models: {', '.join(clash)}")
        return self


class Reps(_Strict):
    """CRM owners → rep roles, for imports of CRM exports (``journeys import --preset``).

    Two spellings load: ``{default_role: AE, owners: {OWNER: ROLE, ...}}``, or the short form
    ``{OWNER: ROLE, ...}`` (owners only, ``default_role`` stays ``other``). A mapping whose keys
    are only ``default_role``/``owners`` is the long form."""

    default_role: RepRole = "other"
    """The role of an owner not listed in ``owners`` (the import reports each such owner)."""
    owners: dict[Annotated[str, Field(min_length=1, max_length=256)], RepRole] = Field(default_factory=dict)
    """Owner id (Salesforce User id, HubSpot owner id, name or email as the export shows it) → role."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: object) -> object:
        if isinstance(data, dict) and not set(data) <= {"default_role", "owners"}:
            return {"owners": data}
        return data


class CrmValues(_Strict):
    """Your CRM's picklist values → ours, on top of the presets' defaults (matched case-insensitively)."""

    lead_status: dict[str, LeadStatus] = Field(default_factory=dict)
    """A lead status or lifecycle stage (Salesforce Lead ``Status``, HubSpot ``Lead Status``/``Lifecycle Stage``)."""
    opportunity_stage: dict[str, Literal["open", "won", "lost"]] = Field(default_factory=dict)
    """A stage (Salesforce ``StageName``, HubSpot ``Deal Stage``): still open, closed won or closed lost."""
    call_outcome: dict[str, ConversationOutcome] = Field(default_factory=dict)
    """A call result or meeting outcome (Salesforce ``CallDisposition``, HubSpot ``Call outcome``/``Meeting outcome``)."""


class Definitions(_Strict):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    activated_at: AwareDatetime
    description: str = ""
    channels: dict[str, Channel]
    personas: list[Persona] = Field(default_factory=list)
    icp: list[IcpRule] = Field(default_factory=list)
    scoring: Scoring
    stages: list[Stage] = Field(min_length=1)
    sla: Sla
    alerts: Alerts
    attribution: Attribution = Field(default_factory=Attribution)
    reps: Reps = Field(default_factory=Reps)
    crm_values: CrmValues = Field(default_factory=CrmValues)

    @model_validator(mode="after")
    def _cross_references(self) -> "Definitions":
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        missing_channels = sorted(CHANNELS - set(self.channels))
        if missing_channels:
            raise ValueError(
                f"channels: missing {', '.join(missing_channels)} (the tracker emits them; say for each its "
                "side and team, e.g. sales_email: {side: human, team: sales} for a rep's 1:1 email)")
        unknown = sorted(set(self.scoring.channel_points) - set(self.channels))
        if unknown:
            raise ValueError(f"scoring.channel_points names unknown channels: {', '.join(unknown)}")
        personas = {p.name for p in self.personas}
        missing = sorted(set(self.alerts.committee_required_personas) - personas)
        if missing:
            raise ValueError(f"alerts.committee_required_personas names unknown personas: {', '.join(missing)}")
        if self.alerts.committee_from_stage not in names:
            raise ValueError(f"alerts.committee_from_stage {self.alerts.committee_from_stage!r} is not a stage")
        roles = [s.role for s in self.stages if s.role]
        repeated = sorted({r for r in roles if roles.count(r) > 1})
        if repeated:
            raise ValueError(f"stage roles must be unique; repeated: {', '.join(repeated)}")
        statuses, outcomes = set(get_args(LeadStatus)), set(get_args(ConversationOutcome))
        for stage in self.stages:
            for cond in stage.when:
                for value in cond.lead_status or ():
                    if value not in statuses:
                        raise ValueError(f"stage {stage.name}: lead_status {value!r} is not a lead status; one of "
                                         f"{', '.join(sorted(statuses))}")
                for value in cond.conversation_outcome or ():
                    if value not in outcomes:
                        raise ValueError(f"stage {stage.name}: conversation_outcome {value!r} is not an outcome; one "
                                         f"of {', '.join(sorted(outcomes))}")
        return self

    def stage_for(self, role: str) -> str:
        """The name of the stage with this role ('' when none): declared with ``role:``, else the
        stage named as the role was before roles (``mql`` for qualified)."""
        declared = next((s.name for s in self.stages if s.role == role), None)
        if declared is not None:
            return declared
        default = ROLE_DEFAULT_NAMES[role]
        named = self.stage(default)
        return default if named is not None and named.role is None else ""

    def funnel_stages(self) -> list[str]:
        """The funnel's steps: the stages above rank 0 in rank order, without the lost stage."""
        lost = self.stage_for("lost")
        return [s.name for s in sorted(self.stages, key=lambda s: s.rank) if s.rank > 0 and s.name != lost]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def persona_of(self, title: str) -> str:
        for persona in self.personas:
            if any(re.search(p, title, re.IGNORECASE) for p in persona.title_patterns):
                return persona.name
        return ""


def check(text: str, source: str = "<definitions>") -> Definitions:
    """Parse and validate; raise ConfigurationError listing every problem as ``path: message``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: $: expected a mapping at the top level")
    try:
        return Definitions.model_validate(data)
    except ValidationError as exc:
        lines = [f"{json_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigurationError(f"{source}: {len(lines)} problem(s)\n" + "\n".join(lines)) from exc


def load(path: Path | None = None) -> Definitions:
    path = path or DEFAULT_PATH
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read definitions file {path}: {exc}") from exc
    return check(text, str(path))


def activated(defs: Definitions, when: datetime) -> bool:
    return when >= defs.activated_at
