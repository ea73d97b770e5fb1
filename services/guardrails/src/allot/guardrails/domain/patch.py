"""Changing a workspace's limits: JSON merge patch (RFC 7386) and the kill switch, pure."""

from __future__ import annotations

from typing import Any

from allot.guardrails.domain.settings import WorkspaceLimits


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patch_limits(limits: WorkspaceLimits, patch: dict[str, Any]) -> WorkspaceLimits:
    """``limits`` with a merge patch applied and validated as a whole.

    A top-level ``null`` resets the field to its default (``daily_cap_eur_cents: null`` = no cap);
    inside maps it removes the key (``fx_rates_to_eur: {"USD": null}`` drops the USD rate,
    ``autonomy: {"rule": null}`` returns rules to live). Raises pydantic.ValidationError naming the field.
    """
    return WorkspaceLimits.model_validate(merge_patch(limits.model_dump(mode="json"), patch))


def set_kill_switch(limits: WorkspaceLimits, enabled: bool, ad_account_id: str | None = None) -> WorkspaceLimits:
    """Turn the workspace kill switch (no account) or one ad account's kill switch on or off."""
    if ad_account_id is None:
        return limits.model_copy(update={"kill_switch": enabled})
    killed = set(limits.killed_ad_accounts)
    if enabled:
        killed.add(ad_account_id)
    else:
        killed.discard(ad_account_id)
    return limits.model_copy(update={"killed_ad_accounts": frozenset(killed)})


#: Limits fields that name ad accounts (a workspace may reference only its own: tenancy, issue #14).
ACCOUNT_FIELDS = ("killed_ad_accounts", "account_whitelist")


def added_accounts(before: WorkspaceLimits, after: WorkspaceLimits) -> list[tuple[str, str]]:
    """(field, ad account id) for each account ``after`` names that ``before`` did not, in a stable order: only
    these need the tenancy check (removing an account, or keeping one, is always allowed)."""
    added: list[tuple[str, str]] = []
    for name in ACCOUNT_FIELDS:
        old, new = getattr(before, name) or frozenset(), getattr(after, name) or frozenset()
        added += [(name, account) for account in sorted(new - old)]
    return added
