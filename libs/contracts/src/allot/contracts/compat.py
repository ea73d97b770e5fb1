"""Backward-compatibility check between two JSON Schemas of the same payload."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _signature(prop: Schema) -> Any:
    """What a field's type is, ignoring docs and constraints: type, $ref, items, anyOf members, enum."""
    if "$ref" in prop:
        return ("ref", prop["$ref"].rsplit("/", 1)[-1])
    if "anyOf" in prop:
        return ("anyOf", tuple(sorted(repr(_signature(p)) for p in prop["anyOf"])))
    if "enum" in prop or "const" in prop:
        return ("enum",)
    sig: tuple[Any, ...] = ("type", prop.get("type"))
    if prop.get("type") == "array" and "items" in prop:
        sig += (_signature(prop["items"]),)
    if prop.get("type") == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        sig += (_signature(prop["additionalProperties"]),)
    return sig


def _enum_values(prop: Schema) -> set[Any]:
    if "enum" in prop:
        return set(prop["enum"])
    if "const" in prop:
        return {prop["const"]}
    return set()


def _compare_object(path: str, old: Schema, new: Schema, problems: list[str]) -> None:
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            problems.append(f"{path}.{name}: field removed")
            continue
        new_prop = new_props[name]
        if _signature(old_prop) != _signature(new_prop):
            problems.append(f"{path}.{name}: type changed from {_signature(old_prop)} to {_signature(new_prop)}")
        removed = _enum_values(old_prop) - _enum_values(new_prop)
        if _enum_values(old_prop) and removed:
            problems.append(f"{path}.{name}: allowed values removed {sorted(map(str, removed))}")
    new_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(new_required):
        problems.append(f"{path}.{name}: new required field")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every backward-incompatible difference (removed field, changed type, new required field)."""
    problems: list[str] = []
    _compare_object(old.get("title", "#"), old, new, problems)
    old_defs: dict[str, Schema] = old.get("$defs", {})
    new_defs: dict[str, Schema] = new.get("$defs", {})
    for name, old_def in old_defs.items():
        if name not in new_defs:
            problems.append(f"$defs.{name}: definition removed")
            continue
        _compare_object(f"$defs.{name}", old_def, new_defs[name], problems)
    return problems
