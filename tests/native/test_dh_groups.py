"""Diffie-Hellman set-ups: only known safe-prime groups, computed off the event loop.

A client picks the group of a SESSION_SETUP.  The node refuses any modulus that is not
a published safe prime with generator 2 (a composite one of the right size used to
pass), and computes the exchange in a worker thread, a bounded number at a time, so
that a burst of 4096-bit set-ups does not hold up a resolution behind it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    KeyExchangeMode,
    Message,
    OpCode,
    OpFlag,
    ResolutionRequest,
    SessionSetupRequest,
    SessionSetupResponse,
)
from iinode.resolution import native_trust
from iinode.resolution.native_client import next_request_id
from iinode.resolution.native_dh import DhKeyPair, DhPublic, client_finish, modexp
from iinode.resolution.native_dh_groups import MODP_1024, MODP_4096, SAFE_PRIME_GROUPS
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import PeerState
from iinode.storage import MemoryStore

PREFIX = "88.118.8"


def _composite(bits: int) -> int:
    """An odd number of ``bits`` bits with a known factor (3)."""
    while True:
        n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if n % 3 == 0:
            return n


def _handler(tmp_path: Path) -> NativeHandler:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix=PREFIX)
    service = HandleService(settings, MemoryStore())
    assert service.owned is not None
    return NativeHandler(service, service._own_site(service.owned))


def _setup(key: bytes) -> Message:
    return Message(
        OpCode.SESSION_SETUP,
        SessionSetupRequest(KeyExchangeMode.DIFFIE_HELLMAN, 0, "", 0, key),
        request_id=next_request_id(), version=(2, 10), flags=OpFlag.CT,
    )  # fmt: skip


def test_modexp_is_pow() -> None:
    for exponent in (0, 1, 31, 32, 33, secrets.randbits(384)):
        base = secrets.randbelow(MODP_4096)
        assert modexp(base, exponent, MODP_4096) == pow(base, exponent, MODP_4096)


def test_only_known_safe_prime_groups_are_taken() -> None:
    y = 5
    for bits in (1024, 2048, 4096):
        with pytest.raises(HandleError, match="not a known safe-prime group") as refused:
            DhPublic(y, _composite(bits), 2).check()
        assert refused.value.code == ResponseCode.SESSION_FAILED
    with pytest.raises(HandleError, match="generator 5"):
        DhPublic(y, MODP_1024, 5).check()
    with pytest.raises(HandleError, match="out of range"):
        DhPublic(MODP_1024 - 1, MODP_1024, 2).check()
    for p in SAFE_PRIME_GROUPS:  # the stock client's 1024-bit group among them
        DhPublic(y, p, 2).check()


async def test_a_composite_modulus_opens_no_session(tmp_path: Path) -> None:
    handler = _handler(tmp_path)
    forged = DhPublic(5, _composite(2048), 2).to_wire()
    reply = (await handler.handle(_setup(forged), PeerState())).message
    assert reply is not None
    assert reply.response_code == ResponseCode.SESSION_FAILED
    assert len(handler.sessions) == 0
    # The stock client's group works end to end.
    pair = DhKeyPair.generate(MODP_1024, 2)
    reply = (await handler.handle(_setup(pair.public.to_wire()), PeerState())).message
    assert reply is not None
    assert reply.response_code == ResponseCode.SUCCESS
    assert isinstance(reply.body, SessionSetupResponse)
    session = handler.sessions.get(reply.session_id, handler._clock())
    assert session is not None
    assert session.key == client_finish(pair, reply.body.data)


async def test_set_ups_do_not_hold_up_a_resolution(tmp_path: Path) -> None:
    handler = _handler(tmp_path)
    key = DhKeyPair.generate(MODP_4096, 2).public.to_wire()
    burst = 16
    resolve = Message(
        OpCode.RESOLUTION, ResolutionRequest(f"{PREFIX}/NONE"), request_id=next_request_id()
    )

    arrival = 0.01  # seconds after the set-ups arrive

    async def timed_resolution() -> float:
        """Seconds from the resolution's arrival to its answer."""
        await asyncio.sleep(arrival)
        reply = (await handler.handle(resolve, PeerState())).message
        assert reply is not None
        assert reply.response_code == ResponseCode.HANDLE_NOT_FOUND
        return time.perf_counter() - start - arrival

    start = time.perf_counter()
    *setups, latency = await asyncio.gather(
        *(handler.handle(_setup(key), PeerState(address=f"192.0.2.{n + 1}")) for n in range(burst)),
        timed_resolution(),
    )
    total = time.perf_counter() - start
    assert all(o.message.response_code == ResponseCode.SUCCESS for o in setups)  # type: ignore[union-attr]
    # The set-ups took a while; the resolution did not wait for them.
    assert latency < 0.25, (latency, total)
    assert latency < total / 3, (latency, total)


async def test_too_many_waiting_set_ups_are_answered_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native_trust, "DH_WAITING", 2)
    handler = _handler(tmp_path)
    key = DhKeyPair.generate(MODP_4096, 2).public.to_wire()
    outcomes = await asyncio.gather(
        *(handler.handle(_setup(key), PeerState(address=f"192.0.2.{n + 1}")) for n in range(8))
    )
    codes = [o.message.response_code for o in outcomes if o.message is not None]
    assert codes.count(ResponseCode.SUCCESS) == native_trust.DH_THREADS + 2
    assert codes.count(ResponseCode.SERVER_BUSY) == 8 - native_trust.DH_THREADS - 2
