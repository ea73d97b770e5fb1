"""The compatibility check catches an added allowed value and every kind of tightened constraint (each sends
records to a DLQ: new values to consumers still on the old schema, old records to consumers on the new one), while
loosening a constraint or adding an optional field stays compatible. Also on real pydantic payload schemas."""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from allot.contracts.compat import breaking_changes
from allot.runtime.docs import topic_schema


def _schema(**props: dict[str, Any]) -> dict[str, Any]:
    return {"title": "p", "type": "object", "properties": props, "required": sorted(props)}


def _one(old: dict[str, Any], new: dict[str, Any]) -> str:
    problems = breaking_changes(old, new)
    assert len(problems) == 1, problems
    return problems[0]


def test_added_enum_value_is_breaking() -> None:
    old = _schema(source={"type": "string", "enum": ["pool", "rule"]})
    new = _schema(source={"type": "string", "enum": ["pool", "rule", "flight"]})
    assert _one(old, new).startswith("p.source: allowed values added ['flight']")
    assert breaking_changes(old, old) == []


def test_added_value_of_an_enum_in_defs_and_of_an_optional_enum() -> None:
    old = {"title": "p", "type": "object", "properties": {"state": {"$ref": "#/$defs/State"},
           "level": {"anyOf": [{"enum": ["info", "warn"], "type": "string"}, {"type": "null"}]}},
           "$defs": {"State": {"enum": ["on", "off"], "title": "State", "type": "string"}}}
    new = copy.deepcopy(old)
    new["$defs"]["State"]["enum"].append("paused")
    new["properties"]["level"]["anyOf"][0]["enum"].append("page")
    problems = breaking_changes(old, new)
    assert any(p.startswith("$defs.State: allowed values added ['paused']") for p in problems), problems
    assert any(p.startswith("p.level: allowed values added ['page']") for p in problems), problems
    assert len(problems) == 2


def test_const_becoming_another_value_is_breaking() -> None:
    problems = breaking_changes(_schema(kind={"const": "a", "type": "string"}), _schema(kind={"const": "b",
                                                                                               "type": "string"}))
    assert "p.kind: allowed values removed ['a']" in problems
    assert any(p.startswith("p.kind: allowed values added ['b']") for p in problems)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ({"type": "integer", "maximum": 100}, {"type": "integer", "maximum": 99}, "maximum <= 100 -> <= 99"),
        ({"type": "integer", "maximum": 100}, {"type": "integer", "exclusiveMaximum": 100}, "maximum <= 100 -> < 100"),
        ({"type": "integer"}, {"type": "integer", "maximum": 10**12}, "maximum none -> <= 1000000000000"),
        ({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 1}, "minimum >= 0 -> >= 1"),
        ({"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, "minimum >= 0 -> > 0"),
        ({"type": "string", "maxLength": 64}, {"type": "string", "maxLength": 32}, "maxLength 64 -> 32"),
        ({"type": "string"}, {"type": "string", "maxLength": 32}, "maxLength none -> 32"),
        ({"type": "string", "minLength": 1}, {"type": "string", "minLength": 3}, "minLength 1 -> 3"),
        ({"type": "string", "pattern": "^[A-Z]+$"}, {"type": "string", "pattern": "^[A-Z]{3}$"},
         "pattern '^[A-Z]+$' -> '^[A-Z]{3}$'"),
        ({"type": "string"}, {"type": "string", "pattern": "^[a-z]+$"}, "pattern 'none' -> '^[a-z]+$'"),
        ({"type": "string"}, {"type": "string", "format": "uuid"}, "format 'none' -> 'uuid'"),
        ({"type": "integer", "multipleOf": 5}, {"type": "integer", "multipleOf": 10}, "multipleOf 5 -> 10"),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 500},
         {"type": "array", "items": {"type": "string"}, "maxItems": 100}, "maxItems 500 -> 100"),
        ({"type": "array", "items": {"type": "string"}}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
         "minItems none -> 1"),
        ({"type": "array", "items": {"type": "string"}},
         {"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "object", "additionalProperties": {"type": "integer"}},
         {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 20},
         "maxProperties none -> 20"),
    ],
)
def test_tightened_constraint_is_breaking(old: dict[str, Any], new: dict[str, Any], message: str) -> None:
    assert _one(_schema(f=old), _schema(f=new)) == f"p.f: constraint tightened: {message}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"type": "integer", "maximum": 99}, {"type": "integer", "maximum": 100}),
        ({"type": "integer", "exclusiveMaximum": 100}, {"type": "integer", "maximum": 100}),
        ({"type": "integer", "maximum": 100}, {"type": "integer"}),
        ({"type": "integer", "minimum": 1}, {"type": "integer", "minimum": 0}),
        ({"type": "string", "maxLength": 32}, {"type": "string", "maxLength": 64}),
        ({"type": "string", "minLength": 3}, {"type": "string", "minLength": 1}),
        ({"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "string"}),
        ({"type": "integer", "multipleOf": 10}, {"type": "integer", "multipleOf": 5}),
        ({"type": "string", "description": "x"}, {"type": "string", "description": "y", "title": "F"}),
    ],
)
def test_loosened_or_unchanged_constraint_is_compatible(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert breaking_changes(_schema(f=old), _schema(f=new)) == []


def test_tightened_constraints_inside_optional_values_array_items_and_nested_objects() -> None:
    old = _schema(
        cents={"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
        ids={"type": "array", "items": {"type": "string", "maxLength": 64}},
        limits={"type": "object", "properties": {"cap": {"type": "integer", "maximum": 1000}}},
    )
    new = copy.deepcopy(old)
    new["properties"]["cents"]["anyOf"][0]["minimum"] = 100
    new["properties"]["ids"]["items"]["maxLength"] = 16
    new["properties"]["limits"]["properties"]["cap"]["maximum"] = 500
    assert sorted(breaking_changes(old, new)) == [
        "p.cents: constraint tightened: minimum >= 0 -> >= 100",
        "p.ids[]: constraint tightened: maxLength 64 -> 16",
        "p.limits.cap: constraint tightened: maximum <= 1000 -> <= 500",
    ]


def test_new_required_field_is_still_breaking() -> None:
    old = _schema(a={"type": "integer"})
    new = {**_schema(a={"type": "integer"}, b={"type": "string"})}
    assert breaking_changes(old, new) == ["p.b: new required field"]


# ------------------------------------------------------------------ on the schemas pydantic really generates


class Channel(StrEnum):
    META = "meta"
    GOOGLE = "google"


class ChannelWithTiktok(StrEnum):
    META = "meta"
    GOOGLE = "google"
    TIKTOK = "tiktok"


class Before(BaseModel):
    channel: Channel
    kind: Literal["a", "b"]
    budget_cents: Annotated[int, Field(ge=0, le=10**9)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["title"] = "m"
    for definition in schema.get("$defs", {}).values():
        definition["title"] = "Channel"
    if "$defs" in schema:  # one name for the enum whichever class generated it
        schema["$defs"] = {"Channel": next(iter(schema["$defs"].values()))}
        schema["properties"]["channel"] = {"$ref": "#/$defs/Channel"}
    return schema


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"channel": (ChannelWithTiktok, ...)}, "$defs.Channel: allowed values added ['tiktok']"),
        ({"kind": (Literal["a", "b", "c"], ...)}, "m.kind: allowed values added ['c']"),
        ({"budget_cents": (Annotated[int, Field(ge=0, le=10**6)], ...)},
         "m.budget_cents: constraint tightened: maximum <= 1000000000 -> <= 1000000"),
        ({"budget_cents": (Annotated[int, Field(ge=1, le=10**9)], ...)},
         "m.budget_cents: constraint tightened: minimum >= 0 -> >= 1"),
        ({"name": (Annotated[str, Field(min_length=1, max_length=100)], ...)},
         "m.name: constraint tightened: maxLength 200 -> 100"),
        ({"currency": (Annotated[str | None, Field(pattern=r"^(EUR|USD)$")], None)},
         "m.currency: constraint tightened: pattern '^[A-Z]{3}$' -> '^(EUR|USD)$'"),
    ],
)
def test_on_pydantic_models(changes: dict[str, Any], expected: str) -> None:
    from pydantic import create_model

    after = create_model("After", __base__=Before, **changes)
    problems = breaking_changes(_model_schema(Before), _model_schema(after))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_every_topic_schema_is_compatible_with_itself() -> None:
    from allot.contracts import TOPICS

    for topic in TOPICS:
        schema = topic_schema(topic)
        assert breaking_changes(schema, copy.deepcopy(schema)) == [], topic
