"""Pure guardrails domain: workspace limits, ledger facts, the decision chain and the approval builders."""

from allot.guardrails.domain.arbiter import Arbitration, arbitrate
from allot.guardrails.domain.checks import Block, Exposure, check_caps, compute_exposure
from allot.guardrails.domain.decide import decide, decision_id_for, ledger_zone
from allot.guardrails.domain.decision import DECISION_NAMESPACE, ChangeRecord, Decision, LedgerIncrement
from allot.guardrails.domain.dryrun import action_verdicts
from allot.guardrails.domain.events import blocked_event, http_status, signed_approval
from allot.guardrails.domain.facts import LedgerFacts, ManualRequest, PoolMember
from allot.guardrails.domain.money import PLATFORM_MIN_BUDGET_CENTS, min_budget_cents, round_half_up, to_eur_cents
from allot.guardrails.domain.patch import merge_patch, patch_limits, set_kill_switch
from allot.guardrails.domain.release import Release, release_of
from allot.guardrails.domain.settings import (
    DEFAULT_AUTONOMY,
    DEFAULT_OVERDELIVERY_FACTORS,
    DEFAULT_SOURCE_PRIORITY,
    AutonomyMode,
    ManualRateLimit,
    WorkspaceLimits,
    diff_settings,
)

__all__ = [
    "action_verdicts",
    "DECISION_NAMESPACE",
    "DEFAULT_AUTONOMY",
    "DEFAULT_OVERDELIVERY_FACTORS",
    "DEFAULT_SOURCE_PRIORITY",
    "PLATFORM_MIN_BUDGET_CENTS",
    "Arbitration",
    "AutonomyMode",
    "Block",
    "ChangeRecord",
    "Decision",
    "Exposure",
    "LedgerFacts",
    "LedgerIncrement",
    "ManualRateLimit",
    "ManualRequest",
    "PoolMember",
    "Release",
    "WorkspaceLimits",
    "arbitrate",
    "blocked_event",
    "check_caps",
    "compute_exposure",
    "decide",
    "ledger_zone",
    "decision_id_for",
    "diff_settings",
    "http_status",
    "merge_patch",
    "min_budget_cents",
    "patch_limits",
    "release_of",
    "round_half_up",
    "set_kill_switch",
    "signed_approval",
    "to_eur_cents",
]
