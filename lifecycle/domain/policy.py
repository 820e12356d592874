"""The lifecycle policy of Contract 2: a validated, versioned value, and its rules.

The policy is a pure function of a relationship's current-cycle facts: ``decide``
returns the first stage change whose rule fires (table order), or None. The aggregate
applies it until nothing fires. Thresholds come from a TOML file; default v1 is built in
(``policies/default.toml``). What is adopted (``lifecycle.domain.adoption``) is the text
of that file, ``PolicyText``, and every process decides with the adopted one.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.domain.errors import InvalidPolicy
from lifecycle.domain.vocabulary import Kind, Stage

FIRST_PURCHASE = "first-purchase"
ENGAGED = "engaged"
REPEAT_PURCHASE = "repeat-purchase"
REFERRAL = "referral"
LOYAL = "loyal"
RENEWAL = "renewal"
CANCELLED = "cancelled"
INACTIVITY = "inactivity"
# Not rules of the policy table, but recorded in the same place of a StageChanged event.
REACTIVATION = "reactivation"
MANUAL = "manual"

RULE_IDS = (
    FIRST_PURCHASE,
    ENGAGED,
    REPEAT_PURCHASE,
    REFERRAL,
    LOYAL,
    RENEWAL,
    CANCELLED,
    INACTIVITY,
)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True


class EngagedRule(_Rule):
    touchpoints: int = Field(default=3, ge=1)
    kinds: frozenset[Kind] = frozenset(
        {Kind.INQUIRY, Kind.TRIAL, Kind.SALES_CONTACT, Kind.COMMUNITY}
    )


class RepeatPurchaseRule(_Rule):
    distinct_days: int = Field(default=2, ge=2)


class LoyalRule(_Rule):
    distinct_days: int = Field(default=4, ge=1)
    span_days: int = Field(default=90, ge=0)
    min_latest_survey_score: int = Field(default=7, ge=0, le=10)


class InactivityRule(_Rule):
    days: int = Field(default=365, ge=1)


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    first_purchase: _Rule = Field(default_factory=_Rule, alias=FIRST_PURCHASE)
    engaged: EngagedRule = Field(default_factory=EngagedRule)
    repeat_purchase: RepeatPurchaseRule = Field(
        default_factory=RepeatPurchaseRule, alias=REPEAT_PURCHASE
    )
    referral: _Rule = Field(default_factory=_Rule)
    loyal: LoyalRule = Field(default_factory=LoyalRule)
    renewal: _Rule = Field(default_factory=_Rule)
    cancelled: _Rule = Field(default_factory=_Rule)
    inactivity: InactivityRule = Field(default_factory=InactivityRule)


class Reactivation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: frozenset[Kind] = frozenset(
        {Kind.INQUIRY, Kind.TRIAL, Kind.SALES_CONTACT, Kind.PURCHASE}
    )


@dataclass(frozen=True, slots=True)
class CycleFacts:
    """What the rules look at: the current stage and the current cycle's touchpoints."""

    stage: Stage
    kind_counts: Mapping[str, int]
    purchase_days: AbstractSet[int]  # proleptic ordinals of UTC calendar days
    latest_survey_score: int | None
    open_complaints: int


# (rule id, from stage or None for "any open stage", to stage, condition)
RuleRow = tuple[str, Stage | None, Stage, Callable[[CycleFacts], bool]]


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    to_stage: Stage


class Policy(BaseModel):
    """A versioned lifecycle policy: which rules are on, and their thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    description: str = ""
    rules: Rules = Field(default_factory=Rules)
    reactivation: Reactivation = Field(default_factory=Reactivation)

    @classmethod
    def from_toml(cls, text: str, origin: str = "policy") -> Policy:
        try:
            data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidPolicy(f"{origin}: not valid TOML: {error}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidPolicy(f"{origin}: {where}: {first['msg']}") from None

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        return PolicyText.read(path).policy

    @classmethod
    def default(cls) -> Policy:
        return PolicyText.default().policy

    def decide(self, facts: CycleFacts) -> Decision | None:
        """The first stage change of the table whose rule fires, or None."""
        for rule, from_stage, to_stage, fires in self.rule_table:
            if (from_stage is None or from_stage == facts.stage) and fires(facts):
                if from_stage is None and not facts.stage.is_open:
                    continue
                return Decision(rule, to_stage)
        return None

    def reactivates(self, kind: str) -> bool:
        return kind in self.reactivation.kinds

    def is_inactive(self, last_touchpoint_at: datetime, now: datetime) -> bool:
        rule = self.rules.inactivity
        return rule.enabled and now - last_touchpoint_at >= timedelta(days=rule.days)

    @cached_property
    def rule_table(self) -> tuple[RuleRow, ...]:
        """The enabled rules in table order, compiled once (the policy is frozen)."""
        rules = self.rules
        engaged_kinds = tuple(rules.engaged.kinds)

        def first_purchase(f: CycleFacts) -> bool:
            return f.kind_counts.get(Kind.PURCHASE, 0) > 0

        def engaged(f: CycleFacts) -> bool:
            count = sum(f.kind_counts.get(kind, 0) for kind in engaged_kinds)
            return count >= rules.engaged.touchpoints

        def repeat_purchase(f: CycleFacts) -> bool:
            return len(f.purchase_days) >= rules.repeat_purchase.distinct_days

        def referral(f: CycleFacts) -> bool:
            return f.kind_counts.get(Kind.REFERRAL, 0) > 0

        def loyal(f: CycleFacts) -> bool:
            loyal_rule = rules.loyal
            days = f.purchase_days
            return (
                len(days) >= loyal_rule.distinct_days
                and max(days) - min(days) >= loyal_rule.span_days
                and f.open_complaints == 0
                and (
                    f.latest_survey_score is None
                    or f.latest_survey_score >= loyal_rule.min_latest_survey_score
                )
            )

        def renewal(f: CycleFacts) -> bool:
            return f.kind_counts.get(Kind.RENEWAL, 0) > 0

        def cancelled(f: CycleFacts) -> bool:
            return f.kind_counts.get(Kind.CANCELLATION, 0) > 0

        candidates: tuple[tuple[_Rule, RuleRow], ...] = (
            (
                rules.first_purchase,
                (FIRST_PURCHASE, Stage.EXPLORATION, Stage.AWARENESS, first_purchase),
            ),
            (rules.engaged, (ENGAGED, Stage.EXPLORATION, Stage.AWARENESS, engaged)),
            (
                rules.repeat_purchase,
                (REPEAT_PURCHASE, Stage.AWARENESS, Stage.EXPANSION, repeat_purchase),
            ),
            (rules.referral, (REFERRAL, Stage.AWARENESS, Stage.EXPANSION, referral)),
            (rules.loyal, (LOYAL, Stage.EXPANSION, Stage.COMMITMENT, loyal)),
            (rules.renewal, (RENEWAL, Stage.EXPANSION, Stage.COMMITMENT, renewal)),
            # None: from any open stage.
            (rules.cancelled, (CANCELLED, None, Stage.DISSOLUTION, cancelled)),
        )
        return tuple(row for config, row in candidates if config.enabled)


@dataclass(frozen=True)
class PolicyText:
    """A policy as written: its TOML text, which is what is adopted, fingerprinted and
    shown (comments included), and the policy it validates to."""

    text: str
    policy: Policy
    origin: str
    """Where the text came from, for messages: a file's path, or "the built-in policy"."""

    @classmethod
    def parse(cls, text: str, origin: str) -> PolicyText:
        return cls(text, Policy.from_toml(text, origin=origin), origin)

    @classmethod
    def read(cls, path: Path) -> PolicyText:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidPolicy(f"cannot read policy file {path}: {error.strerror}") from None
        return cls.parse(text, str(path))

    @classmethod
    def default(cls) -> PolicyText:
        return cls.builtin("default.toml", "the built-in policy")

    @classmethod
    def builtin(cls, name: str, origin: str) -> PolicyText:
        """A policy shipped with the engine (``policies/NAME``)."""
        text = resources.files("lifecycle.domain.policies").joinpath(name).read_text("utf-8")
        return cls.parse(text, origin)

    @property
    def version(self) -> int:
        return self.policy.version

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()
