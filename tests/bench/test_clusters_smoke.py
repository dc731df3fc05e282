"""The bench's launchers against real servers: a 1-node qcore cluster (default),
one with users on, a 2-node one over TLS with a peer secret, etcd and
PySyncObj (opt-in with QCORE_SLOW=1, skipped when not installed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qcore.bench.admin_conn import AdminConn
from qcore.bench.cli import _systems, build_parser
from qcore.bench.cluster import QcoreCluster
from qcore.bench.etcd import EtcdCluster, etcd_binary
from qcore.bench.peers import PysyncobjCluster, pysyncobj_installed
from qcore.bench.runner import measure
from qcore.bench.targets import STRING_FIELD

slow = pytest.mark.skipif(os.environ.get("QCORE_SLOW") != "1", reason="set QCORE_SLOW=1 for peer launcher tests")


async def _smoke(cluster, prepare_n: int, workloads: list[str]) -> dict:
    await cluster.start()
    try:
        params = await cluster.prepare(prepare_n)
        for wl in workloads:
            r = await measure(system=cluster.system, nodes=cluster.nodes, target=cluster.target, params=params,
                              endpoints=cluster.endpoints, workload=wl, concurrency=2, duration=0.4, warmup=0.1)
            assert r.failed is None, r.failed
            assert r.figures["errors"] == 0, r.error_samples
            assert r.figures["ops"] > 0
        assert all(rss > 0 for rss in cluster.rss_bytes())
        return params
    finally:
        cluster.stop()


async def test_qcore_single_node_cluster_serves_every_workload(tmp_path: Path):
    params = await _smoke(QcoreCluster(1, tmp_path), 20, ["write", "add", "read", "create", "batch"])
    assert len(params["entities"]) == 20
    assert len({tuple(e) for e in params["entities"]}) == 20


async def test_qcore_entities_are_filled_with_64_bytes_as_the_peers_keys_are(tmp_path: Path):
    """A read-only run reads values of the same size from qcore as from etcd and PySyncObj,
    whose fills write 64 bytes per key: each bench entity is created with a 64-byte Payload."""
    cluster = QcoreCluster(1, tmp_path)
    await cluster.start()
    try:
        params = await cluster.prepare(5)
        conn = await AdminConn.open(cluster.leader)
        try:
            for typ, i in params["entities"]:
                eid = {"typ": typ, "id": i}
                read = {"Read": {"entity_id": eid, "field_type": STRING_FIELD, "value": None,
                                 "write_time": None, "writer_id": None}}
                reply = await conn.perform("UpdateEntity", request=[read])
                assert reply["response"][0]["Read"]["value"] == {"String": "x" * 64}, reply
        finally:
            await conn.close()
    finally:
        cluster.stop()


async def test_qcore_with_users_on_serves_every_workload_as_a_checked_user(tmp_path: Path):
    cluster = QcoreCluster(1, tmp_path, users=True)
    assert cluster.system == "qcore-users"
    params = await _smoke(cluster, 20, ["write", "add", "read", "create", "batch"])
    assert params["login"][0] == "bench"  # not admin: every request's permissions are checked
    log = (tmp_path / "qcore-users-1" / "node-1.log").read_text()
    assert "users: UserAdd bench by admin" in log and "user bench authenticated" in log


async def test_run_tls_measures_a_cluster_that_serves_tls_and_proves_the_peer_secret(tmp_path: Path):
    """`qcore bench run --tls`'s system (qcore-tls): two nodes serving wss:// form a
    cluster only once their peer links pass the secret's handshake, and the load
    generator, verifying the CA, gets answers without errors."""
    args = build_parser().parse_args(["run", "--tls", "--nodes", "2"])
    [cluster] = [s for s in _systems(args, 2, tmp_path, []) if s.system == "qcore-tls"]
    params = await _smoke(cluster, 10, ["write", "read"])
    assert params["tls_ca"] == str(tmp_path / "tls" / "ca.pem")
    for me, peer in ((1, 2), (2, 1)):
        log = (tmp_path / "qcore-tls-2" / f"node-{me}.log").read_text()
        assert "serving on wss://" in log and "(peer authentication: peer secret;" in log, log
        assert f"connected to peer {peer} at" in log, log  # a link is up only after the handshake passed


@slow
async def test_qcore_three_node_cluster_forms_over_the_wire(tmp_path: Path):
    await _smoke(QcoreCluster(3, tmp_path), 20, ["write", "read"])


@slow
@pytest.mark.skipif(etcd_binary() is None, reason="etcd not installed (apt-get install -y etcd-server)")
async def test_etcd_cluster(tmp_path: Path):
    await _smoke(EtcdCluster(3, tmp_path), 50, ["write", "read", "batch"])


@slow
@pytest.mark.skipif(not pysyncobj_installed(), reason="pysyncobj not installed (pip install '.[bench]')")
async def test_pysyncobj_cluster(tmp_path: Path):
    await _smoke(PysyncobjCluster(3, tmp_path), 50, ["write", "add", "read", "batch"])
