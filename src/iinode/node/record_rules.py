"""Rules on records that the handle service applies when it changes one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from iinode.errors import ValueAlreadyExists, ValueInvalid, ValuesNotFound
from iinode.identifiers import (
    AdminData,
    HandleName,
    HandleValue,
    Permissions,
    Record,
    SecKeyData,
)


def check_indexes(
    handle: HandleName, old: Record, incoming: Sequence[HandleValue], *, existing: bool
) -> None:
    present = {v.index for v in old}
    asked = {v.index for v in incoming}
    if not existing and present & asked:
        clash = sorted(present & asked)
        raise ValueAlreadyExists(f"{handle} already has values at {clash}", handle=str(handle))
    if existing and not asked <= present:
        missing = sorted(asked - present)
        raise ValuesNotFound(f"{handle} has no values at {missing}", handle=str(handle))


def keep_secrets(handle: HandleName, old: Record, new: Sequence[HandleValue]) -> list[HandleValue]:
    """``new`` with each data-less HS_SECKEY given the sealed secret ``old`` holds at its index,
    so a record read back and written unchanged keeps its secrets."""
    out = []
    for v in new:
        if isinstance(v.data, SecKeyData) and not v.data.raw:
            before = next((o for o in old if o.index == v.index), None)
            if before is None or not isinstance(before.data, SecKeyData):
                raise ValueInvalid(
                    f"the HS_SECKEY at index {v.index} of {handle} has no secret",
                    handle=str(handle),
                )
            v = replace(v, data=before.data, permissions=v.permissions & ~Permissions.PUBLIC_READ)
        out.append(v)
    return out


def admins_of(record: Iterable[HandleValue]) -> Record:
    return tuple(v for v in record if isinstance(v.data, AdminData))


def same_value(a: HandleValue, b: HandleValue) -> bool:
    return replace(a, timestamp=0) == replace(b, timestamp=0)


__all__ = ["admins_of", "check_indexes", "keep_secrets", "same_value"]
