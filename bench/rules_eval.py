"""Benchmark of the pure rules evaluator (no I/O inside the timed section).

Generates, from a fixed seed, 100 ad accounts × 500 entities (50,000) with 30
daily buckets each, and 1,000 rules (40 % built-in templates, 60 % random
condition trees), each scoped to 1–3 accounts and one entity level. All rules
are evaluated at one ``now`` against the entities of their accounts, sharing
one ``AggregateCache`` (each entity's range sums are computed once, on first
use, inside the timed section). A second measurement evaluates a sample of
rules against *every* entity (each rule copied to all accounts and all three
levels) with a cold cache, and extrapolates the full 1,000 × 50,000 product.

Run:  PYTHONPATH=services/rules/src python bench/rules_eval.py
Writes bench/results/rules_eval.json.
"""

from __future__ import annotations

import json
import platform as py_platform
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services" / "rules" / "src"))

from allot.rules.domain import (  # noqa: E402
    META_ONLY_METRICS,
    TEMPLATE_NAMES,
    UNIVERSAL_METRICS,
    AggregateCache,
    DailyCounters,
    Entity,
    EntityLevel,
    EntityStatus,
    RuleDefinition,
    RuleHistory,
    Scope,
    evaluate_rule,
    instantiate_template,
    validate_rule,
)

SEED = 20260517
N_ACCOUNTS = 100
ENTITIES_PER_ACCOUNT = 500
DAYS = 30
N_RULES = 1000
CROSS_SAMPLE_RULES = 20
NOW = datetime(2026, 5, 17, 10, 37, tzinfo=UTC)
LEVELS: tuple[EntityLevel, ...] = ("campaign", "adset", "ad")
LEVEL_WEIGHTS = (0.2, 0.7, 0.1)
RANGES = ("today", "yesterday", "last_3d", "last_7d", "last_14d", "last_30d")
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq", "between")
# Rough value scales per metric so random thresholds sometimes match.
SCALE: dict[str, float] = {
    "spend": 20_000, "impressions": 50_000, "clicks": 800, "reach": 20_000, "conversions": 20, "revenue": 60_000,
    "ctr": 1.5, "cpc": 40, "cpm": 800, "cpa": 2_000, "roas": 2.5, "frequency": 2.5, "conversion_rate": 3,
    "aov": 4_000, "profit": 10_000, "roi": 50, "avg_daily_spend": 3_000, "daily_budget": 5_000,
    "budget_spent_pct": 60, "link_clicks": 500, "link_ctr": 1.0, "cost_per_link_click": 60,
    "landing_page_views": 300, "cost_per_landing_page_view": 90, "add_to_cart": 40, "cost_per_add_to_cart": 600,
    "initiate_checkout": 20, "cost_per_initiate_checkout": 1_200, "leads": 10, "cost_per_lead": 2_500,
    "thruplays": 2_000, "cost_per_thruplay": 12, "hook_rate": 25, "hold_rate": 20,
}


def make_accounts(rng: random.Random) -> dict[str, str]:
    platforms = ["meta"] * 60 + ["google"] * 20 + ["tiktok"] * 15 + ["sandbox"] * 5
    rng.shuffle(platforms)
    return {f"acct_{i:03d}": p for i, p in enumerate(platforms)}


def make_entities(rng: random.Random, accounts: dict[str, str]) -> dict[str, list[Entity]]:
    today = NOW.date()
    day_list: list[date] = [today - timedelta(days=d) for d in range(DAYS)]
    by_account: dict[str, list[Entity]] = {}
    rand, choices = rng.random, rng.choices
    for account, platform in accounts.items():
        is_meta = platform == "meta"
        entities: list[Entity] = []
        levels = choices(LEVELS, LEVEL_WEIGHTS, k=ENTITIES_PER_ACCOUNT)
        for j in range(ENTITIES_PER_ACCOUNT):
            budget = int(500 + rand() * 20_000)
            base_imp = 1_000 + rand() * 20_000
            ctr = 0.005 + rand() * 0.03
            cvr = rand() * 0.08
            aov = 2_000 + rand() * 8_000
            cpm = 300 + rand() * 1_500
            buckets: dict[date, DailyCounters] = {}
            for d in day_list:
                noise = 0.5 + rand()
                imp = int(base_imp * noise)
                clicks = int(imp * ctr)
                conv = int(clicks * cvr * (0.5 + rand()))
                spend = int(imp * cpm / 1000)
                if is_meta:
                    buckets[d] = DailyCounters(
                        spend, imp, clicks, conv, int(conv * aov), int(imp / (1.2 + noise)),
                        int(clicks * 0.7), int(clicks * 0.5), conv * 3, conv * 2, conv // 2,
                        int(imp * 0.3), int(imp * 0.07),
                    )
                else:
                    buckets[d] = DailyCounters(spend, imp, clicks, conv, int(conv * aov), int(imp / (1.2 + noise)))
            status: EntityStatus = "active" if rand() < 0.85 else "paused"
            entities.append(
                Entity(f"{account}_e{j:03d}", levels[j], platform, account,  # type: ignore[arg-type]  # platform: str
                       f"{'Prospecting' if j % 2 else 'Retargeting'} {j}", status, "USD", budget, buckets)
            )
        by_account[account] = entities
    return by_account


def random_leaf(rng: random.Random, metrics: list[str]) -> dict[str, Any]:
    metric = rng.choice(metrics)
    scale = SCALE[metric]
    operator = rng.choice(OPERATORS)
    value: Any
    if operator == "between":
        low = scale * rng.uniform(0.2, 1.0)
        value = [round(low, 2), round(low + scale * rng.uniform(0.1, 2.0), 2)]
    elif operator in ("eq", "neq"):
        value = round(scale * rng.uniform(0.5, 1.5))
    else:
        value = round(scale * rng.uniform(0.3, 2.0), 2)
    return {"metric": metric, "operator": operator, "value": value, "time_range": rng.choice(RANGES)}


def random_tree(rng: random.Random, metrics: list[str], depth: int = 1) -> dict[str, Any]:
    children: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        if depth < 3 and rng.random() < 0.3:
            children.append(random_tree(rng, metrics, depth + 1))
        else:
            children.append(random_leaf(rng, metrics))
    return {"logic": rng.choice(("and", "or")), "conditions": children}


def random_action(rng: random.Random, meta_only_scope: bool) -> dict[str, Any]:
    kinds = ["pause", "activate", "increase_budget_pct", "decrease_budget_pct", "notify_only"]
    if meta_only_scope:
        kinds.append("relaunch")
    kind = rng.choice(kinds)
    if kind.endswith("_pct"):
        return {"type": kind, "pct": rng.choice((5, 10, 15, 20, 30, 50))}
    return {"type": kind}


def make_rules(rng: random.Random, accounts: dict[str, str]) -> list[RuleDefinition]:
    account_ids = list(accounts)
    rules: list[RuleDefinition] = []
    for i in range(N_RULES):
        scoped = rng.sample(account_ids, rng.randint(1, 3))
        level = rng.choices(LEVELS, LEVEL_WEIGHTS)[0]
        scope: dict[str, Any] = {"ad_account_ids": scoped, "entity_level": level}
        if rng.random() < 0.1:
            scope["entity_filter"] = {"name_contains": "prospect"}
        meta_scope = all(accounts[a] == "meta" for a in scoped)
        if i % 5 < 2:
            rules.append(instantiate_template(
                rng.choice(TEMPLATE_NAMES), name=f"rule {i}", scope=scope,
                targets={"target_roas": rng.uniform(1.5, 3.0), "target_cpa": rng.uniform(1_000, 3_000)},
                account_platforms=accounts,
            ))
            continue
        metrics = list(UNIVERSAL_METRICS) + (sorted(META_ONLY_METRICS) if meta_scope else [])
        data = {
            "name": f"rule {i}",
            "scope": scope,
            "conditions": random_tree(rng, metrics),
            "actions": [random_action(rng, meta_scope)],
            "protections": {"cooldown_minutes": rng.choice((60, 360, 720)),
                            "budget_daily_cap_cents": rng.choice((None, 15_000))},
        }
        rules.append(validate_rule(data, account_platforms=accounts))
    return rules


def make_history(rng: random.Random, rule: RuleDefinition, by_account: dict[str, list[Entity]]) -> RuleHistory:
    ids = [e.entity_id for a in rule.scope.ad_account_ids for e in by_account[a][:50]]
    acted = {eid: NOW - timedelta(minutes=rng.randint(1, 1_000)) for eid in rng.sample(ids, min(10, len(ids)))}
    runs = [NOW - timedelta(hours=rng.randint(0, 9)) for _ in range(rng.randint(0, 3))]
    return RuleHistory(execution_started_at=runs, last_acted_at=acted)


def main() -> dict[str, Any]:
    rng = random.Random(SEED)
    t0 = time.perf_counter()
    accounts = make_accounts(rng)
    by_account = make_entities(rng, accounts)
    n_entities = sum(len(v) for v in by_account.values())
    t1 = time.perf_counter()
    rules = make_rules(rng, accounts)
    t2 = time.perf_counter()
    histories = [make_history(rng, r, by_account) for r in rules]
    print(f"generated {n_entities} entities in {t1 - t0:.1f}s; validated {len(rules)} rules in {t2 - t1:.2f}s",
          flush=True)

    # Timed: scoped evaluation, aggregates computed lazily inside, shared across rules.
    cache = AggregateCache(NOW)
    pairs_considered = pairs = matched = 0
    start = time.perf_counter()
    for rule, history in zip(rules, histories, strict=True):
        candidates = [e for a in rule.scope.ad_account_ids for e in by_account[a]]
        result = evaluate_rule(rule, candidates, history, NOW, cache=cache)
        pairs_considered += len(candidates)
        pairs += result.entities_evaluated
        matched += len(result.matched)
    seconds = time.perf_counter() - start
    print(f"scoped: {pairs:,} pairs evaluated ({pairs_considered:,} considered) in {seconds:.2f}s "
          f"= {pairs / seconds:,.0f} pairs/s; {matched:,} matched; {len(cache):,} entities aggregated", flush=True)

    # Timed: sampled full cross-product, cold cache — every sampled rule sees every entity once.
    all_entities = [e for v in by_account.values() for e in v]
    sample = rules[:: N_RULES // CROSS_SAMPLE_RULES][:CROSS_SAMPLE_RULES]
    cross_cache = AggregateCache(NOW)
    cross_pairs = cross_matched = 0
    cross_start = time.perf_counter()
    for rule in sample:
        for level in LEVELS:
            wide = rule.model_copy(update={"scope": Scope(ad_account_ids=tuple(accounts), entity_level=level)})
            result = evaluate_rule(wide, all_entities, None, NOW, cache=cross_cache)
            cross_pairs += result.entities_evaluated
            cross_matched += len(result.matched)
    cross_seconds = time.perf_counter() - cross_start
    cross_rate = cross_pairs / cross_seconds
    full_product = N_RULES * n_entities
    print(f"cross-product sample: {len(sample)} rules × {n_entities:,} entities = {cross_pairs:,} pairs in "
          f"{cross_seconds:.2f}s = {cross_rate:,.0f} pairs/s (cold cache); full {full_product:,} pairs ≈ "
          f"{full_product / cross_rate:,.0f}s", flush=True)

    report: dict[str, Any] = {
        "rules": len(rules),
        "entities": n_entities,
        "pairs_evaluated": pairs,
        "seconds": round(seconds, 3),
        "pairs_per_second": round(pairs / seconds),
        "pairs_considered": pairs_considered,
        "matched": matched,
        "accounts": N_ACCOUNTS,
        "days_of_buckets": DAYS,
        "generation_seconds": round(t1 - t0, 2),
        "rule_validation_seconds": round(t2 - t1, 3),
        "cross_product_sample": {
            "rules_sampled": len(sample),
            "entities": n_entities,
            "pairs_evaluated": cross_pairs,
            "matched": cross_matched,
            "seconds": round(cross_seconds, 3),
            "pairs_per_second": round(cross_rate),
            "cache": "cold (aggregation of all entities included)",
            "full_product_pairs": full_product,
            "full_product_estimated_seconds": round(full_product / cross_rate, 1),
        },
        "seed": SEED,
        "now": NOW.isoformat(),
        "python": py_platform.python_version(),
        "machine": py_platform.machine(),
    }
    out = ROOT / "bench" / "results" / "rules_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
