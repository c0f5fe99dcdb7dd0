from __future__ import annotations

from iinode.telemetry.model import DataType as T
from iinode.telemetry.model import Equipment, Reading, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.validation import ReadingValidator, RejectLog, RejectReason

NOW = 1_800_000_000_000_000
EQ = Equipment(id="88.118.8/M1", tags=(Tag("temp", T.FLOAT), Tag("count", T.INT)))


def make() -> tuple[ReadingValidator, MemoryRegistry]:
    reg = MemoryRegistry([EQ])
    return ReadingValidator(reg, clock=lambda: NOW, max_future_us=60_000_000), reg


async def test_accepts_good_and_counts_each_reason() -> None:
    validator, _ = make()
    batch = [
        Reading(EQ.id, "temp", NOW, 20.5),
        Reading("88.118.8/GHOST", "temp", NOW, 1.0),
        Reading(EQ.id, "pressure", NOW, 1.0),
        Reading(EQ.id, "count", NOW, 1.5),
        Reading(EQ.id, "count", NOW + 61_000_000, 3),
        Reading(EQ.id, "count", NOW + 59_000_000, 4),
    ]
    accepted = await validator.validate(batch)
    assert accepted == [batch[0], batch[5]]
    rejects = validator.rejects
    assert rejects.total == 4
    assert rejects.counts == {
        RejectReason.UNKNOWN_EQUIPMENT: 1,
        RejectReason.UNKNOWN_TAG: 1,
        RejectReason.WRONG_TYPE: 1,
        RejectReason.FUTURE_TIMESTAMP: 1,
    }
    assert [r.reading for r in rejects.recent] == batch[1:5]
    assert "61 s ahead" in rejects.recent[-1].detail


async def test_cache_and_forget() -> None:
    validator, reg = make()
    ghost = Reading("88.118.8/NEW", "temp", NOW, 1.0)
    assert await validator.validate([ghost]) == []
    await reg.put(Equipment(id="88.118.8/NEW", tags=(Tag("temp"),)))
    assert await validator.validate([ghost]) == []
    validator.forget("88.118.8/NEW")
    assert await validator.validate([ghost]) == [ghost]
    validator.forget()


def test_reject_log_is_bounded() -> None:
    log = RejectLog(keep=3)
    for i in range(10):
        log.malformed(f"bad {i}")
    assert log.total == 10
    assert [r.detail for r in log.recent] == ["bad 7", "bad 8", "bad 9"]


async def test_equipment_id_is_normalised() -> None:
    validator = ReadingValidator(MemoryRegistry([Equipment(id="cn.sh/M1", tags=(Tag("t"),))]))
    [r] = await validator.validate([Reading("cn.sh/M1", "t", 1, 1.0)])
    assert r.equipment == "CN.SH/M1"


async def test_equipment_cache_stays_bounded_under_unknown_ids() -> None:
    reg = MemoryRegistry([EQ])
    validator = ReadingValidator(reg, clock=lambda: NOW, max_cached=100)
    for n in range(1000):
        await validator.validate([Reading(f"88.118.8/GHOST{n}", "temp", NOW, 1.0)])
        assert len(validator._cache) <= 100
    assert await validator.validate([Reading(EQ.id, "temp", NOW, 1.0)])
    assert validator.rejects.counts[RejectReason.UNKNOWN_EQUIPMENT] == 1000


async def test_timestamps_the_store_cannot_hold_are_rejected() -> None:
    validator, _ = make()
    opc_min_datetime_us = -11_644_473_600_000_000  # 1601-01-01, OPC UA MinDateTime
    batch = [
        Reading(EQ.id, "temp", -5_000, 1.0),
        Reading(EQ.id, "temp", opc_min_datetime_us, 2.0),
        Reading(EQ.id, "temp", 0, 3.0),
        Reading(EQ.id, "temp", 1 << 70, 4.0),
    ]
    validator.max_future_us = 1 << 80  # only the storable range is in question here
    accepted = await validator.validate(batch)
    assert accepted == [batch[2]]
    assert validator.rejects.counts == {RejectReason.BAD_TIMESTAMP: 3}
    assert "outside 1970..9999" in validator.rejects.recent[0].detail
