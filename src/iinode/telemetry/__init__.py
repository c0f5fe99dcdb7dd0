"""Telemetry: readings, equipment registry, live state, validation, bus, ingest, store."""

from iinode.telemetry.bus import BusClosed, Delivery, MemoryBus, ReadingBus, Subscription
from iinode.telemetry.codec import decode_batch, encode_batch
from iinode.telemetry.ingest import IngestStats, IngestWorker
from iinode.telemetry.model import (
    Connection,
    DataType,
    Equipment,
    EquipmentKind,
    Quality,
    Reading,
    Tag,
    Value,
    from_us,
    now_us,
    to_us,
)
from iinode.telemetry.registry import EquipmentRegistry, MemoryRegistry
from iinode.telemetry.store import SCHEMA, Bucket, ParquetStore, StoreSettings
from iinode.telemetry.twin import LiveState, TagState
from iinode.telemetry.validation import ReadingValidator, Reject, RejectLog, RejectReason

__all__ = [
    "SCHEMA",
    "Bucket",
    "BusClosed",
    "Connection",
    "DataType",
    "Delivery",
    "Equipment",
    "EquipmentKind",
    "EquipmentRegistry",
    "IngestStats",
    "IngestWorker",
    "LiveState",
    "MemoryBus",
    "MemoryRegistry",
    "ParquetStore",
    "Quality",
    "Reading",
    "ReadingBus",
    "ReadingValidator",
    "Reject",
    "RejectLog",
    "RejectReason",
    "StoreSettings",
    "Subscription",
    "Tag",
    "TagState",
    "Value",
    "decode_batch",
    "encode_batch",
    "from_us",
    "now_us",
    "to_us",
]
