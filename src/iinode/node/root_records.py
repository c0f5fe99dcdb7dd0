"""The two handles a private network's root answers: ``0.NA/0.NA`` and ``0.0/0.0``.

A Handle.Net client reads the global root's records at start-up and whenever
it refreshes its root information (``Configuration.resolveVerifyUpdateAndPersist
BootstrapHandles``: both are resolved certified).  On the global network
``0.NA/0.NA`` (the root of resolution) holds the root sites (HS_SITE) and the
key that signs them (HS_PUBKEY), ``0.0/0.0`` (the root of trust) holds the root
key; both hold an HS_ADMIN.  A top-level node without a parent is the root of
its own network and answers both the same way: its HS_SITE (with its server
key) at index 1, its server key as HS_PUBKEY at index 300 and an HS_ADMIN
naming its administrators' group ``200:0.NA/<prefix>``.  A client configured
with that node as its root (``root_info``, or ``hdl-getrootinfo`` against
it) then walks top -> secondary -> enterprise through ordinary referrals.

The records are made from the node's configuration and key on each request;
nothing is stored, so they follow a key rotation at once.
"""

from __future__ import annotations

from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    Prefix,
    PubKeyData,
    Record,
    SiteData,
)

#: ``Common.ROOT_HANDLE`` and ``Common.TRUST_ROOT_HANDLE``.
ROOT_HANDLE = "0.NA/0.NA"
TRUST_ROOT_HANDLE = "0.0/0.0"
ROOT_HANDLES = frozenset({ROOT_HANDLE, TRUST_ROOT_HANDLE})
SITE_INDEX = 1
ADMIN_INDEX = 100
PUBKEY_INDEX = 300
#: What the global root's HS_ADMIN grants ("011111110011" read as Handle.Net's bit order).
ROOT_ADMIN_PERMISSIONS = AdminPermission.all()
TTL = 86_400


def is_root_handle(handle: HandleName) -> bool:
    return str(handle).upper() in ROOT_HANDLES


def root_record(site: SiteData, public_key: bytes, owned: Prefix, now: int) -> Record:
    """The values a network root answers for ``0.NA/0.NA`` and ``0.0/0.0``."""
    admins = IndexedHandle(200, owned.na_handle)
    return (
        HandleValue(SITE_INDEX, "HS_SITE", site, ttl=TTL, timestamp=now),
        HandleValue(
            ADMIN_INDEX, "HS_ADMIN", AdminData(ROOT_ADMIN_PERMISSIONS, admins), TTL, timestamp=now
        ),
        HandleValue(PUBKEY_INDEX, "HS_PUBKEY", PubKeyData(public_key), ttl=TTL, timestamp=now),
    )


__all__ = ["ROOT_HANDLE", "ROOT_HANDLES", "TRUST_ROOT_HANDLE", "is_root_handle", "root_record"]
