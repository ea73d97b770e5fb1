"""Compatibility check between two JSON Schemas of the same payload (committed → current).

Breaking, because a record one side writes is refused by the other and goes to a DLQ:
- a removed field, a changed type, a removed allowed value: records on the topic (or replayed) no longer validate;
- a new required field and a tightened constraint (lower maximum, higher minimum, smaller maxLength/maxItems,
  larger minLength/minItems, a new or changed pattern, format or multipleOf, uniqueItems, closed
  additionalProperties): records written under the old schema are refused by new consumers;
- an added allowed value (enum / Literal / const): producers on the new schema write records that consumers still on
  the old one refuse.
"""

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
    if prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict):
        sig += (_signature(prop["additionalProperties"]),)
    return sig


def _enum_values(prop: Schema) -> set[Any]:
    if "enum" in prop:
        return set(prop["enum"])
    if "const" in prop:
        return {prop["const"]}
    return set()


#: Upper bounds: a smaller (or newly present) value is tighter. Lower bounds: a larger one is.
_UPPER = ("maxLength", "maxItems", "maxProperties")
_LOWER = ("minLength", "minItems", "minProperties")


def _bound(prop: Schema, inclusive: str, exclusive: str) -> tuple[float, bool] | None:
    """The tighter of an inclusive and an exclusive numeric bound, as (value, exclusive?)."""
    found = []
    if isinstance(prop.get(inclusive), int | float):
        found.append((prop[inclusive], False))
    if isinstance(prop.get(exclusive), int | float):
        found.append((prop[exclusive], True))
    if not found:
        return None
    if inclusive == "maximum":
        return min(found, key=lambda b: (b[0], not b[1]))
    return max(found, key=lambda b: (b[0], b[1]))


def _show(bound: tuple[float, bool] | None, upper: bool) -> str:
    if bound is None:
        return "none"
    return f"{('<' if upper else '>') if bound[1] else ('<=' if upper else '>=')} {bound[0]}"


def _tightened(path: str, old: Schema, new: Schema, problems: list[str]) -> None:
    """Constraints on one value that accept less in ``new`` than in ``old``."""
    for upper, (inc, exc) in ((True, ("maximum", "exclusiveMaximum")), (False, ("minimum", "exclusiveMinimum"))):
        ob, nb = _bound(old, inc, exc), _bound(new, inc, exc)
        if nb is None:
            continue
        if ob is None:
            tighter = True
        elif upper:
            tighter = nb[0] < ob[0] or (nb[0] == ob[0] and nb[1] and not ob[1])
        else:
            tighter = nb[0] > ob[0] or (nb[0] == ob[0] and nb[1] and not ob[1])
        if tighter:
            problems.append(f"{path}: constraint tightened: {inc} {_show(ob, upper)} -> {_show(nb, upper)}")
    for key in _UPPER:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: constraint tightened: {key} {old.get(key, 'none')} -> {new[key]}")
    for key in _LOWER:
        if new.get(key, 0) > old.get(key, 0):
            problems.append(f"{path}: constraint tightened: {key} {old.get(key, 'none')} -> {new[key]}")
    for key in ("pattern", "format"):
        if key in new and new[key] != old.get(key):
            problems.append(f"{path}: constraint tightened: {key} {old.get(key, 'none')!r} -> {new[key]!r}")
    if "multipleOf" in new:
        om, nm = old.get("multipleOf"), new["multipleOf"]
        if om is None or om % nm != 0:  # still fine only when every old multiple is a new one
            problems.append(f"{path}: constraint tightened: multipleOf {om if om is not None else 'none'} -> {nm}")
    if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
        problems.append(f"{path}: constraint tightened: uniqueItems")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        problems.append(f"{path}: constraint tightened: additionalProperties false")


def _compare_value(path: str, old: Schema, new: Schema, problems: list[str]) -> None:
    """Allowed values and constraints of one value whose type is unchanged, and of the values inside it."""
    old_values, new_values = _enum_values(old), _enum_values(new)
    removed = old_values - new_values
    if old_values and removed:
        problems.append(f"{path}: allowed values removed {sorted(map(str, removed))}")
    added = new_values - old_values
    if old_values and added:
        problems.append(f"{path}: allowed values added {sorted(map(str, added))} (consumers on the old schema "
                        "refuse them)")
    _tightened(path, old, new, problems)
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _compare_value(f"{path}[]", old["items"], new["items"], problems)
    if isinstance(old.get("additionalProperties"), dict) and isinstance(new.get("additionalProperties"), dict):
        _compare_value(f"{path}{{}}", old["additionalProperties"], new["additionalProperties"], problems)
    if "anyOf" in old and "anyOf" in new:
        new_members = {repr(_signature(m)): m for m in new["anyOf"]}
        for member in old["anyOf"]:
            match = new_members.get(repr(_signature(member)))
            if match is not None:
                _compare_value(path, member, match, problems)
    if "properties" in old or "properties" in new:
        _compare_object(path, old, new, problems)


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
            continue
        _compare_value(f"{path}.{name}", old_prop, new_prop, problems)
    new_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(new_required):
        problems.append(f"{path}.{name}: new required field")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every incompatible difference: removed field, changed type, new required field, added or removed allowed
    value, tightened constraint (see the module docstring)."""
    problems: list[str] = []
    _compare_object(old.get("title", "#"), old, new, problems)
    old_defs: dict[str, Schema] = old.get("$defs", {})
    new_defs: dict[str, Schema] = new.get("$defs", {})
    for name, old_def in old_defs.items():
        if name not in new_defs:
            problems.append(f"$defs.{name}: definition removed")
            continue
        if _signature(old_def) != _signature(new_def := new_defs[name]) and "properties" not in old_def:
            problems.append(f"$defs.{name}: type changed from {_signature(old_def)} to {_signature(new_def)}")
            continue
        # Enum classes and constrained types live in $defs too (referenced by $ref), not only objects.
        _compare_value(f"$defs.{name}", old_def, new_def, problems)
    return problems
