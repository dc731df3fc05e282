"""Schemas with typos against a real node (issue 17, point 2): SetSchema on the wire and
``qcore-cli set-schema`` refuse an unknown key with its path, nothing is created, and the
node keeps serving; YAML choice names such as ``Off`` stay names."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.cli import client as cli
from qcore.client import Client, CommandError, ServerError


async def test_a_misspelt_schema_key_is_refused_on_the_wire_and_by_the_cli(
    ready_node: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(ready_node) as c:
        with pytest.raises(ServerError) as e:
            await c.set_schema({"entity_type": "Machine", "inherits": "Object", "fields": {}})
        assert "request.SetSchema.entity_schema: unknown key 'inherits'" in str(e.value)
        with pytest.raises(ServerError) as e:
            await c.set_schema({"entity_type": "Machine", "inherit": "Object", "fields": {
                "Speed": {"default_value": {"Float": 0.0}, "rnak": 3}}})
        assert "request.SetSchema.entity_schema.fields.Speed: unknown key 'rnak'" in str(e.value)
        with pytest.raises(CommandError, match="unknown entity type 'Machine'"):
            await c.get_schema("Machine")  # nothing was created, and the node still serves

    bad = tmp_path / "machine.yaml"
    bad.write_text("entity_type: Machine\ninherits: Object\nfields: {}\n")
    args = cli.build_parser().parse_args(["--addr", ready_node, "set-schema", str(bad)])
    assert await cli.run(args) == 1
    assert f"{bad}: unknown key 'inherits'" in capsys.readouterr().err

    good = tmp_path / "machine-ok.yaml"
    good.write_text("entity_type: Machine\ninherit: Object\nfields:\n"
                    "  Mode: {default_value: Auto, rank: 3, choices: [Auto, Manual, Off]}\n")
    assert await cli.run(cli.build_parser().parse_args(["--addr", ready_node, "set-schema", str(good)])) == 0
    async with Client(ready_node) as c:
        schema = await c.get_schema("Machine")
        assert schema.inherit == "Object" and schema.fields["Mode"].choices == ("Auto", "Manual", "Off")


async def test_set_schema_sets_a_files_parents_first_and_says_what_stays_set_when_one_is_refused(
    ready_node: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file is read as a whole, like the config file (any order), but set one SetSchema at a
    time: a type listed before the type it inherits is set after it, and a refusal part-way
    names the schemas that were set before it."""
    f = tmp_path / "kid-first.yaml"
    f.write_text("- {entity_type: Kid, inherit: Mid, fields: {K: {default_value: {Int: 0}, rank: 5}}}\n"
                 "- {entity_type: Mid, inherit: Object, fields: {M: {default_value: {Int: 0}, rank: 4}}}\n")
    assert await cli.run(cli.build_parser().parse_args(["--addr", ready_node, "set-schema", str(f)])) == 0
    assert capsys.readouterr().out.strip() == "set schema Mid, Kid"
    async with Client(ready_node) as c:
        assert list((await c.get_complete_schema("Kid")).fields)[-2:] == ["M", "K"]

    f = tmp_path / "second-refused.yaml"
    f.write_text("- {entity_type: Aaa, inherit: Object, fields: {}}\n"
                 "- {entity_type: Bbb, inherit: Nope, fields: {}}\n")
    assert await cli.run(cli.build_parser().parse_args(["--addr", ready_node, "set-schema", str(f)])) == 1
    err = capsys.readouterr().err
    assert "set schema Aaa before Bbb failed; those stay set" in err
    assert "'Bbb' inherits 'Nope', which is not a known entity type" in err
    async with Client(ready_node) as c:
        assert await c.get_schema("Aaa") is not None
