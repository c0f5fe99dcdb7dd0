"""Key files survive a power loss (their directory is synced after publishing them)
and the data directory is private once the node key exists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iinode.node.secret_box import NODE_KEY_FILE, load_or_create_key
from iinode.node.server_keys import key_path, load_server_key, rotate_server_key


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(device, inode) of every directory fsynced."""
    seen: list[tuple[int, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            seen.append((info.st_dev, info.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def _id(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def test_the_node_key_directory_is_synced_and_made_private(
    tmp_path: Path, synced: list[tuple[int, int]]
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    load_or_create_key(data)
    assert (data / NODE_KEY_FILE).exists()
    assert _id(data) in synced
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_server_key_files_are_synced_when_published_and_rotated(
    tmp_path: Path, synced: list[tuple[int, int]]
) -> None:
    load_server_key(tmp_path)
    directory = key_path(tmp_path).parent
    assert _id(directory) in synced
    synced.clear()
    rotate_server_key(tmp_path)
    assert _id(directory) in synced
