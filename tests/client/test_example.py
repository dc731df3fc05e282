"""examples/websocket_client.py — the seed's example client — against a fake node."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qcore.protocol import messages as m
from tests.client.fake_node import FakeNode

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "websocket_client.py"


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    n = FakeNode(1)
    await n.start()
    yield n
    await n.stop()


async def test_example_inits_then_gets_metrics_and_prints_both_replies(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("websocket_client_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    await example.main(node.address)
    assert [type(r) for r in node.received] == [m.Init, m.GetMetrics]
    assert node.received[0].nodes == []
    out = capsys.readouterr().out
    assert '"InitResponse"' in out and '"response": "Ok"' in out
    assert '"GetMetricsResponse"' in out and '"state": "Leader"' in out
    # what it sent is exactly the seed's shape
    sent = json.loads(out.splitlines()[0].removeprefix(">> "))
    assert list(sent) == ["Init"] and set(sent["Init"]) == {"id", "nodes"}
