"""One set of rules for a schema, wherever it comes from (issue 17, point 2): the config
file, ``qcore-cli set-schema``'s YAML and ``SetSchema`` on the wire refuse the same typos
with the same path and reason, and YAML choice names are names."""

from __future__ import annotations

import pytest

from qcore.protocol.values import CodecError, decode_command_request
from qcore.store import Choice, Store, Timestamp
from qcore.store.config import ConfigError, load_config_text, load_schemas_text

OBJECT = {"entity_type": "Object", "inherit": None, "fields": {
    "Name": {"default_value": {"String": ""}, "rank": 0},
    "Parent": {"default_value": {"EntityReference": None}, "rank": 1},
    "Children": {"default_value": {"EntityList": []}, "rank": 2}}}

TYPOS = [
    ({"entity_type": "Machine", "inherits": "Object", "fields": {}}, "", "unknown key 'inherits'"),
    ({"entity_type": "Machine", "inherit": "Object",
      "fields": {"Speed": {"default_value": {"Float": 0.0}, "rnak": 3}}}, "fields.Speed", "unknown key 'rnak'"),
    ({"entity_type": "Machine", "fields": {"Speed": {"default_value": {"Float": 0.0}, "rank": "3"}}},
     "fields.Speed.rank", "expected an integer"),
    ({"entity_type": "Machine", "fields": {"Mode": {"default_value": {"Choice": 0}, "choices": ["Auto", 1]}}},
     "fields.Mode.choices[1]", "expected a choice name (a string), got number 1"),
    ({"entity_type": "Machine", "fields": {"Speed": {"field_type": "Sped", "default_value": {"Float": 0.0}}}},
     "fields.Speed.field_type", "'Sped' differs from the field's key 'Speed'"),
]


@pytest.mark.parametrize("schema,path,reason", TYPOS)
def test_the_wire_and_the_config_file_refuse_the_same_typo_at_the_same_path(schema: dict, path: str, reason: str) -> None:
    with pytest.raises(CodecError) as wire:
        decode_command_request({"SetSchema": {"entity_schema": schema}})
    assert wire.value.path == "request.SetSchema.entity_schema" + (f".{path}" if path else "")
    assert reason in wire.value.reason

    import yaml

    with pytest.raises(ConfigError) as file:
        load_config_text(yaml.safe_dump({"schemas": [OBJECT, schema]}), "c.yaml")
    assert file.value.path == "schemas[1]" + (f".{path}" if path else "")
    assert reason in file.value.reason

    with pytest.raises(ConfigError) as cli:
        load_schemas_text(yaml.safe_dump(schema), "s.yaml")
    assert (cli.value.path, cli.value.reason) == (path, file.value.reason)


def test_yaml_choice_names_that_yaml_1_1_reads_as_booleans_stay_names() -> None:
    text = """
schemas:
  - entity_type: Object
    fields:
      Name: {default_value: ""}
      Parent: {default_value: {EntityReference: null}}
      Children: {default_value: {EntityList: []}}
  - entity_type: Machine
    inherit: Object
    fields:
      Mode: {default_value: Auto, choices: [Auto, Manual, Off, On, Yes, No]}
      Running: {default_value: false}
tree:
  - entity_type: Machine
    name: m
    attributes: {Mode: Off, Running: yes}
"""
    cfg = load_config_text(text, "m.yaml")
    (machine,) = [s for s in cfg.schemas if s.entity_type == "Machine"]
    assert machine.fields["Mode"].choices == ("Auto", "Manual", "Off", "On", "Yes", "No")
    store = Store()
    resp, _ = store.apply(cfg, Timestamp(0, 0))
    assert resp.error is None, resp.error
    from qcore.store import Bool, EntityId

    assert store.read_path(EntityId("Machine", 1), "Mode")[0] == Choice(2)
    assert store.read_path(EntityId("Machine", 1), "Running")[0] == Bool(True)


def test_a_choice_that_is_not_a_string_is_named_and_quoted() -> None:
    with pytest.raises(ConfigError) as e:
        load_schemas_text("entity_type: M\nfields:\n  Mode: {default_value: 0, choices: [Auto, true]}\n", "m.yaml")
    assert str(e.value) == 'm.yaml: fields.Mode.choices[1]: expected a choice name (a string), got boolean True; write it quoted, e.g. "True"'


def test_a_bare_default_that_yaml_versions_read_differently_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        load_schemas_text("entity_type: M\nfields:\n  Running: {default_value: no}\n", "m.yaml")
    assert str(e.value) == "m.yaml: fields.Running.default_value: 'no' could be a Bool or a String: write {Bool: false} or {String: 'no'}"


def test_choice_names_must_differ() -> None:
    resp, _ = Store().apply(load_schemas_cmd("entity_type: M\nfields:\n  Mode: {default_value: 0, choices: [A, B, A]}\n"),
                            Timestamp(0, 0))
    assert resp.error is not None and "listed twice: 'A'" in resp.error


def load_schemas_cmd(text: str) -> object:
    from qcore.store import SetSchema

    (schema,) = load_schemas_text(text)
    return SetSchema(schema)
