"""Upward referrals: the parent's host name is resolved once, off the event loop."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName, SiteData
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore


@pytest.fixture
async def child(tmp_path: Path) -> AsyncIterator[HandleService]:
    settings = NodeSettings(
        role=Role.ENTERPRISE,
        data_dir=tmp_path,
        prefix="88.118.8",
        parent_url="http://localhost:8000",
        parent_handle_port=2641,
    )
    store = MemoryStore()
    yield HandleService(settings, store)
    await store.close()


async def test_parent_host_is_resolved_once_in_a_worker_thread(
    child: HandleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[threading.Thread] = []
    real = socket.gethostbyname

    def counting(host: str) -> str:
        calls.append(threading.current_thread())
        return real(host)

    monkeypatch.setattr(socket, "gethostbyname", counting)
    for n in range(5):
        answer = await child.answer(HandleName.parse(f"99.1/X{n}"))
        assert answer.code == ResponseCode.SERVICE_REFERRAL
        (site,) = answer.sites()
        assert isinstance(site, SiteData)
        assert site.servers[0].address == "127.0.0.1"
    assert len(calls) == 1
    assert calls[0] is not threading.main_thread()
