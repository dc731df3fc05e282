"""FileStorage specifics: what reaches the disk when, segment rotation and
cleanup, the directory lock, big snapshots."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from qcore.raft.types import HardState
from qcore.storage import DataDirDamaged, FileStorage, StorageError, snapfile
from qcore.storage.fs import FileSystem

from .helpers import crash_copy, entries, snapshot, view


def test_unsynced_saves_wait_for_the_next_synced_one(tmp_path) -> None:
    st = FileStorage(tmp_path / "d")
    st.save(HardState(1, 1, 0), entries(1, 1, 3), None, True)
    durable = view(st.recover())
    st.save(HardState(1, 1, 3), [], None, False)  # commit only: etcd's must_sync=False
    assert view(FileStorage(crash_copy(str(tmp_path / "d"), str(tmp_path / "c1"))).recover()) == durable
    st.save(None, entries(1, 4, 1), None, True)
    after = view(st.recover())
    assert after[0] == (1, 1, 3)
    assert view(FileStorage(crash_copy(str(tmp_path / "d"), str(tmp_path / "c2"))).recover()) == after
    st.save(HardState(1, 1, 4), [], None, False)
    st.close()  # a clean shutdown writes it out
    assert FileStorage(tmp_path / "d").recover().hard_state == HardState(1, 1, 4)


def test_one_fsync_per_synced_save(tmp_path) -> None:
    st = FileStorage(tmp_path / "d")
    before = st.fsyncs
    for i in range(10):
        st.save(HardState(i + 1, 1, i * 5), entries(i + 1, i * 5 + 1, 5), None, True)
    assert st.fsyncs - before == 10
    st.save(HardState(10, 1, 50), [], None, False)
    assert st.fsyncs - before == 10
    st.close()


def test_rotation_and_cleanup_after_snapshot(tmp_path) -> None:
    d = tmp_path / "d"
    st = FileStorage(d, segment_bytes=1000)
    for i in range(0, 200, 10):
        st.save(HardState(1, 1, i), entries(1, i + 1, 10, size=20), None, True)
    wals = sorted(n for n in os.listdir(d) if n.startswith("wal-"))
    assert len(wals) > 3
    st.close()
    st = FileStorage(d, segment_bytes=1000)
    assert [e.index for e in st.recover().entries] == list(range(1, 201))
    st.save_snapshot(snapshot(150, 1))
    st.save_snapshot(snapshot(190, 1))
    names = sorted(os.listdir(d))
    assert [n for n in names if n.startswith("snap-")] == ["snap-00000000000000be-0000000000000001.snap"]
    assert [n for n in names if n.startswith("wal-")] == [f"wal-{len(wals) + 2:016x}.log"]
    st.close()
    rec = FileStorage(d).recover()
    assert rec.snapshot.meta.index == 190 and [e.index for e in rec.entries] == list(range(191, 201))


def _on_disk(d, prefix: str) -> int:
    return sum(os.path.getsize(d / n) for n in os.listdir(d) if n.startswith(prefix) and not n.endswith(".tmp"))


def test_disk_bytes_are_the_sizes_of_the_log_and_snapshot_files(tmp_path) -> None:
    """What /metrics exports as qcore_storage_{log,snapshot}_bytes, tracked by
    the writes: it matches the files through rotation, a snapshot, a received
    snapshot and a restart."""
    d = tmp_path / "d"
    st = FileStorage(d, segment_bytes=1000, prealloc_bytes=512)

    def check() -> None:
        assert st.disk_bytes() == (_on_disk(d, "wal-"), _on_disk(d, "snap-"))

    check()
    for i in range(0, 200, 10):
        st.save(HardState(1, 1, i), entries(1, i + 1, 10, size=20), None, True)
        check()
    assert len([n for n in os.listdir(d) if n.startswith("wal-")]) > 3
    st.close()
    st = FileStorage(d, segment_bytes=1000, prealloc_bytes=512)
    check()
    st.save_snapshot(snapshot(150, 1))
    check()
    assert st.disk_bytes()[1] > 0
    st.save(HardState(2, 1, 200), [], snapshot(300, 2), True)  # one received from a leader
    check()
    st.save(None, entries(2, 301, 5, size=20), None, True)
    check()
    st.close()
    st = FileStorage(d, segment_bytes=1000, prealloc_bytes=512)
    check()
    st.close()


def test_leftovers_of_an_interrupted_cleanup_are_removed(tmp_path) -> None:
    d = tmp_path / "d"
    st = FileStorage(d)
    st.save(HardState(1, 1, 5), entries(1, 1, 9), None, True)
    old = crash_copy(str(d), str(tmp_path / "old"))  # segment 1, before the snapshot
    st.save_snapshot(snapshot(5, 1))
    st.close()
    for name in os.listdir(old):  # as if the unlinks had not reached the disk
        if not os.path.exists(d / name):
            os.link(os.path.join(old, name), d / name)
    (d / "snap-0000000000000009-0000000000000001.snap.tmp").write_bytes(b"half a snapshot")
    st = FileStorage(d)
    rec = st.recover()
    assert rec.snapshot.meta.index == 5 and [e.index for e in rec.entries] == [6, 7, 8, 9]
    assert sorted(os.listdir(d)) == ["LOCK", "snap-0000000000000005-0000000000000001.snap", "wal-0000000000000002.log"]
    st.close()


def test_big_snapshot_roundtrip(tmp_path) -> None:
    data = os.urandom(1 << 20) * 24  # 24 MiB, more than one write chunk
    st = FileStorage(tmp_path / "d")
    st.save(HardState(1, 1, 1), entries(1, 1, 1), None, True)
    st.save(HardState(2, 1, 100), [], snapshot(100, 2, data=data), True)
    st.close()
    rec = FileStorage(tmp_path / "d").recover()
    assert rec.snapshot.meta.index == 100 and rec.snapshot.data == data


def test_lock_in_process(tmp_path) -> None:
    st = FileStorage(tmp_path / "d")
    with pytest.raises(StorageError, match="locked by process"):
        FileStorage(tmp_path / "d")
    st.close()
    FileStorage(tmp_path / "d").close()


def _holding(d: str) -> subprocess.Popen[bytes]:
    """Another process that opens FileStorage on `d` and holds it until killed."""
    code = (
        "import sys; from qcore.storage import FileStorage; s = FileStorage(sys.argv[1]);"
        "print('locked', flush=True); sys.stdin.read()"
    )
    return subprocess.Popen([sys.executable, "-c", code, d], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_lock_across_processes_and_released_by_kill(tmp_path) -> None:
    d = str(tmp_path / "d")
    child = _holding(d)
    try:
        assert child.stdout.readline() == b"locked\n"
        with pytest.raises(StorageError, match=f"locked by process {child.pid}"):
            FileStorage(d)
    finally:
        child.kill()
        child.wait()
    FileStorage(d).close()  # flock dies with its holder, even on SIGKILL


def test_a_lock_file_deleted_while_the_dir_is_in_use_lets_no_second_process_in(tmp_path) -> None:
    """An operator who takes LOCK for a stale file and deletes it must not let a second node
    write the same log: the directory itself is locked too."""
    d = str(tmp_path / "d")
    child = _holding(d)
    try:
        assert child.stdout.readline() == b"locked\n"
        os.unlink(os.path.join(d, "LOCK"))
        with pytest.raises(StorageError, match="LOCK file was deleted while a node used the dir"):
            FileStorage(d)
        with pytest.raises(StorageError, match="LOCK file was deleted"):  # the LOCK file it left is no way in either
            FileStorage(d)
    finally:
        child.kill()
        child.wait()
    FileStorage(d).close()  # free once its holder is gone


def test_snapshot_files_without_a_log_are_refused(tmp_path) -> None:
    d = tmp_path / "d"
    st = FileStorage(d)
    st.save(HardState(1, 1, 3), entries(1, 1, 3), None, True)
    st.save_snapshot(snapshot(3, 1))
    st.close()
    for name in os.listdir(d):
        if name.startswith("wal-"):
            os.unlink(d / name)
    with pytest.raises(StorageError, match="no log"):
        FileStorage(d)


class FailingFs(FileSystem):
    """A disk whose fsync starts failing (EIO) after `ok` successful ones."""

    def __init__(self, ok: int) -> None:
        self.ok = ok

    def fsync(self, fd: int) -> None:
        if self.ok <= 0:
            raise OSError(errno.EIO, "injected I/O error")
        self.ok -= 1
        super().fsync(fd)

    def datasync(self, fd: int) -> None:
        self.fsync(fd)


def test_a_failed_fsync_is_fail_stop(tmp_path) -> None:
    d = tmp_path / "d"
    st = FileStorage(d, fs=FailingFs(ok=2))  # one for the new dir's segment, one for the first save
    st.save(HardState(1, 1, 0), entries(1, 1, 2), None, True)
    with pytest.raises(StorageError, match="injected"):
        st.save(None, entries(1, 3, 2), None, True)
    with pytest.raises(StorageError, match="failed earlier"):
        st.save(None, entries(1, 5, 1), None, True)
    st.close()
    rec = FileStorage(d).recover()
    assert [e.index for e in rec.entries][:2] == [1, 2]


def test_an_unreadable_snapshot_is_a_storage_error_but_not_damage(tmp_path, monkeypatch) -> None:
    """A file the node may not read (permissions) is no damage: the error says why it cannot be read,
    not that the data dir must be given up (DataDirDamaged)."""
    d = tmp_path / "d"
    st = FileStorage(d)
    st.save(HardState(1, 1, 3), entries(1, 1, 3), None, True)
    st.save_snapshot(snapshot(3, 1))
    st.close()

    def denied(path: str, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(snapfile, "open", denied, raising=False)  # root reads any file: the denial is planted
    with pytest.raises(StorageError, match="Permission denied") as caught:
        FileStorage(d)
    assert not isinstance(caught.value, DataDirDamaged)
    monkeypatch.undo()
    assert FileStorage(d).recover().snapshot is not None


def test_unusable_paths_are_storage_errors(tmp_path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError):
        FileStorage(tmp_path / "file")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(StorageError):
            FileStorage(ro)
    finally:
        ro.chmod(0o700)
