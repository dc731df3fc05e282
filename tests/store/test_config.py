"""The YAML config file (SPEC 4): the shipped schemas.yaml, bare scalars, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.store import (
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    GetCompleteSchema,
    Int,
    Store,
    String,
    Timestamp,
    TimestampValue,
)
from qcore.store.config import ConfigError, load_config, load_config_text

REPO = Path(__file__).resolve().parents[2]

HEADER = """
schemas:
  - entity_type: Object
    inherit: null
    fields:
      Name:     {default_value: {String: ""},        rank: 0}
      Parent:   {default_value: {EntityReference: null}, rank: 1}
      Children: {default_value: {EntityList: []},     rank: 2}
"""


def loaded(text: str) -> Store:
    s = Store()
    resp, _ = s.apply(load_config_text(text, "t.yaml"), Timestamp(5, 0))
    assert resp.error is None
    return s


def test_shipped_schemas_yaml_loads_with_its_documented_ids():
    cfg = load_config(REPO / "schemas.yaml")
    s = Store()
    resp, _ = s.apply(cfg, Timestamp(1, 0))
    assert resp.error is None and resp.created == 12
    assert s.read_path(EntityId("Root", 1), "Name")[0] == String("Root")
    assert s.read_path(EntityId("User", 3), "Role->Name")[0] == String("Administrator")
    assert s.read_path(EntityId("User", 4), "Role->Name")[0] == String("Operator")
    assert s.read_path(EntityId("Group", 6), "Members->1->Name")[0] == String("alice")
    assert s.read_path(EntityId("Device", 11), "Owner->Name")[0] == String("admin")
    assert s.read_path(EntityId("Sensor", 12), "Parent->Name")[0] == String("Devices")
    assert s.read_path(EntityId("Sensor", 12), "Threshold")[0] == Float(30.0)
    full = s.query(GetCompleteSchema("Sensor")).response
    assert {"Name", "Owner", "Reading", "Firmware"} <= set(full.fields)


def test_tagged_values_of_every_variant():
    s = loaded(
        HEADER
        + """
  - entity_type: T
    inherit: Object
    fields:
      B:  {default_value: {Bool: false}}
      I:  {default_value: {Int: -3}}
      F:  {default_value: {Float: 2}}
      S:  {default_value: {String: "x"}}
      C:  {default_value: {Choice: 1}, choices: [a, b]}
      R:  {default_value: {EntityReference: "T$9"}}
      L:  {default_value: {EntityList: ["T$1", {typ: T, id: 2}]}}
      X:  {default_value: {Blob: [1, 2, 255]}}
      TS: {default_value: {Timestamp: {secs_since_epoch: 5, nanos_since_epoch: 6}}}
tree:
  - entity_type: T
    name: t
"""
    )
    f = s.entity_fields(EntityId("T", 1))
    assert f["B"][0] == Bool(False) and f["I"][0] == Int(-3) and f["F"][0] == Float(2.0)
    assert f["S"][0] == String("x") and f["C"][0] == Choice(1)
    assert f["R"][0] == EntityReference(EntityId("T", 9))
    assert f["L"][0] == EntityList((EntityId("T", 1), EntityId("T", 2)))
    assert f["X"][0] == Blob(b"\x01\x02\xff")
    assert f["TS"][0] == TimestampValue(Timestamp(5, 6))


def test_bare_scalars_follow_the_field_type():
    s = loaded(
        HEADER
        + """
  - entity_type: T
    inherit: Object
    fields:
      B:  {default_value: true}
      I:  {default_value: 4}
      F:  {default_value: 1.5}
      S:  {default_value: hello}
      C:  {default_value: b, choices: [a, b, c]}
      C2: {default_value: 2, choices: [a, b, c]}
      R:  {default_value: {EntityReference: null}}
      L:  {default_value: {EntityList: []}}
      TS: {default_value: 2024-01-02T03:04:05Z}
tree:
  - entity_type: T
    name: 123
    attributes: {F: 3, C: c, R: T$1, L: [T$1], I: 9, S: "5", TS: 0}
"""
    )
    f = s.entity_fields(EntityId("T", 1))
    assert f["Name"][0] == String("123")
    assert f["B"][0] == Bool(True)
    assert f["F"][0] == Float(3.0) and f["I"][0] == Int(9) and f["S"][0] == String("5")
    assert f["C"][0] == Choice(2) and f["C2"][0] == Choice(2)
    assert f["R"][0] == EntityReference(EntityId("T", 1)) and f["L"][0] == EntityList((EntityId("T", 1),))
    assert f["TS"][0] == TimestampValue(Timestamp(0, 0))
    full = s.query(GetCompleteSchema("T")).response
    assert full.fields["TS"].default_value == TimestampValue(Timestamp(1704164645, 0))
    assert full.fields["C"].default_value == Choice(1)


def test_a_bare_date_time_keeps_its_nanoseconds():
    # PyYAML's datetime holds microseconds: the digits after them were dropped silently.
    s = loaded(
        HEADER
        + """
  - entity_type: T
    inherit: Object
    fields:
      TS: {default_value: 2024-01-02T03:04:05.123456789Z}
      T2: {default_value: 2024-01-02T03:04:05.1234567+01:00}
tree:
  - entity_type: T
    name: t
    attributes: {TS: 1970-01-01 00:00:00.000000001}
"""
    )
    full = s.query(GetCompleteSchema("T")).response
    assert full.fields["TS"].default_value == TimestampValue(Timestamp(1704164645, 123456789))
    assert full.fields["T2"].default_value == TimestampValue(Timestamp(1704164645 - 3600, 123456700))
    assert s.entity_fields(EntityId("T", 1))["TS"][0] == TimestampValue(Timestamp(0, 1))
    e = err(HEADER + "      TS: {default_value: 2024-01-02T03:04:05.1234567891Z}\n")
    assert "more precise than a nanosecond" in str(e) and "line 9, column 27" in str(e)


def err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        load_config_text(text, "cfg.yaml")
    e = ei.value
    assert str(e).startswith("cfg.yaml")
    return e


def test_seed_example_needs_root_and_folder_types():
    # The seed's layout verbatim: its tree uses Root and Folder, which it never defines.
    e = err(HEADER + """
tree:
  - entity_type: Root
    name: Root
    children:
      - entity_type: Folder
        name: Users
        attributes: {Description: {String: "Contains all user accounts"}}
""")
    assert (e.path, e.reason) == ("tree[0]", "unknown entity type 'Root'")


@pytest.mark.parametrize(
    "body,path,reason",
    [
        ("schemas: [\n", "line 2, column 1", "invalid YAML"),
        ("- 1\n", "", "expected a mapping with 'schemas' and 'tree'"),
        ("schemas: []\ntrees: []\n", "", "unknown key 'trees'"),
        (HEADER + "  - entity_type: U\n    inherit: Objekt\n", "schemas[1]", "'U' inherits 'Objekt', which is not a known entity type"),
        (HEADER + "  - entity_type: A\n    inherit: B\n  - entity_type: B\n    inherit: A\n", "schemas[1]", "inheritance cycle: A -> B -> A"),
        (HEADER + "  - entity_type: U\n    fields:\n      Email: {default_value: {Strin: x}}\n", "schemas[1].fields.Email.default_value", "expected a value like"),
        (HEADER + "  - entity_type: U\n    fields:\n      Email: {default_value: {Int: x}}\n", "schemas[1].fields.Email.default_value.Int", "expected an integer, got string 'x'"),
        (HEADER + "  - entity_type: U\n    fields:\n      Email: {rank: 1}\n", "schemas[1].fields.Email", "missing default_value"),
        (HEADER + "  - entity_type: U\n    fields:\n      Email: {default_value: x, rnak: 1}\n", "schemas[1].fields.Email", "unknown key 'rnak'"),
        (HEADER + "  - entity_type: U\n    fields:\n      R: {default_value: {EntityReference: 'User-3'}}\n", "schemas[1].fields.R.default_value.EntityReference", "invalid entity id"),
        (HEADER + "  - entity_type: U\n    fields:\n      C: {default_value: z, choices: [a]}\n", "schemas[1].fields.C.default_value", "'z' is not one of the field's choices"),
        (HEADER + "  - entity_type: U\n    fields:\n      C: {default_value: {Choice: 3}, choices: [a]}\n", "schemas[1]", "out of range"),
        (HEADER + "  - entity_type: U\n    fields:\n      N: {default_value: {Int: 5}, choices: [a]}\n", "schemas[1]",
         "field 'N' of 'U': only a Choice field has choices; this one is an Int field"),
        (HEADER + "  - entity_type: Object\n", "schemas[1]", "given twice"),
        (HEADER + "tree:\n  - entity_type: Object\n    attributes: {Nope: 1}\n", "tree[0].attributes.Nope", "type 'Object' has no field 'Nope'"),
        (HEADER + "  - entity_type: U\n    inherit: Object\n    fields:\n      N: {default_value: 0}\ntree:\n  - entity_type: U\n    attributes: {N: {String: x}}\n", "tree[0].attributes.N", "type mismatch: field is Int, got String"),
        (HEADER + "  - entity_type: U\n    inherit: Object\n    fields:\n      N: {default_value: 0}\ntree:\n  - entity_type: U\n    attributes: {N: abc}\n", "tree[0].attributes.N", "expected an integer, got string 'abc'"),
        (HEADER + "tree:\n  - entity_type: Object\n    children:\n      - entity_type: Object\n        attributes: {Parent: null}\n", "tree[0].children[0].attributes.Parent", "set by the tree itself"),
        (HEADER + "tree:\n  - entity_type: Object\n    children: [...]\n", "tree[0].children[0]", "expected a mapping"),
        # a key given twice is invalid YAML, not "the last one wins": a copy-pasted field or attribute
        (HEADER + "  - entity_type: U\n    fields:\n      N: {default_value: 0}\n      N: {default_value: x}\n",
         "line 12, column 7", "invalid YAML: found duplicate key 'N'"),
        (HEADER + "tree:\n  - entity_type: Object\n    name: a\n    name: b\n", "line 12, column 5",
         "found duplicate key 'name'"),
    ],
)
def test_errors_name_file_path_and_reason(body, path, reason):
    e = err(body)
    assert e.path == path, str(e)
    assert reason in e.reason, str(e)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(ei.value) and "cannot read" in str(ei.value)


def test_empty_file_is_an_empty_config(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    with pytest.raises(ConfigError):
        load_config(p)
    p.write_text("schemas: []\ntree: []\n")
    cfg = load_config(p)
    assert cfg.schemas == [] and cfg.tree == []


def test_deeply_nested_tree_is_a_config_error():
    body = HEADER + "tree:\n" + "".join("  " * i + "- entity_type: Object\n" + "  " * i + "  children:\n" for i in range(600))
    with pytest.raises(ConfigError) as ei:
        load_config_text(body, "deep.yaml")
    assert "deep.yaml" in str(ei.value) and "deeply" in str(ei.value)


@pytest.mark.parametrize("when, why", [("2016-12-31T23:59:60Z", "second must be in 0..59"),
                                       ("2024-02-30", "day is out of range for month")])
def test_a_date_time_that_is_not_one_is_refused_with_its_line(when: str, why: str) -> None:
    # PyYAML's ValueError escaped the loader: `qcore --config-file` exited 1 with
    # "ValueError: second must be in 0..59", naming neither the file nor the line.
    e = err(HEADER + f"      TS: {{default_value: {when}}}\n")
    assert str(e).startswith("cfg.yaml: line 9, column 27: ") and why in str(e), str(e)
