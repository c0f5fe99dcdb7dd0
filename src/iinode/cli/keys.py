"""``iinode keys``: the node's server key pair (``show``, ``rotate``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from iinode.cli.common import console, fail, run
from iinode.errors import IinodeError
from iinode.identifiers import Prefix
from iinode.node.server_keys import KEY_BITS, key_path, load_server_key, rotate_server_key
from iinode.node.settings import NodeSettings
from iinode.node.sites import site_key

app = typer.Typer(no_args_is_help=True, help="The node's server key pair.")

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the node's data directory", envvar="IINODE_DATA_DIR")
]


def _fingerprint(public_bytes: bytes) -> str:
    return hashlib.sha256(public_bytes).hexdigest()


async def _publish(settings: NodeSettings) -> bool:
    """Write the node's HS_SITE (with the current key) into ``0.NA/<prefix>``."""
    from iinode.node.changes import COUNTER_FILE, ChangeCounter
    from iinode.node.service import HandleService
    from iinode.storage import open_store

    if settings.prefix is None:
        return False
    store = await open_store(settings.store_url, base_dir=settings.data_dir)
    changes = ChangeCounter(settings.data_dir / COUNTER_FILE)
    try:
        await HandleService(settings, store, changes=changes).refresh_site()
    finally:
        changes.close()
        await store.close()
    return True


def _settings(data_dir: Path) -> NodeSettings:
    try:
        return NodeSettings.load(data_dir)
    except (IinodeError, OSError) as exc:
        fail(f"{data_dir} holds no node: {exc}")


@app.command("show")
def show(data_dir: DataDir) -> None:
    """Where the key is and the SHA-256 fingerprint of its HS_PUBKEY encoding."""
    _settings(data_dir)
    path = key_path(data_dir)
    if not path.exists():
        fail(f"{path} does not exist yet; it is created when the node starts")
    key = load_server_key(data_dir, create=False)
    console.print(f"key file: {path}")
    console.print(f"RSA {key.private.key_size} bits")
    console.print(f"fingerprint (SHA-256 of HS_PUBKEY): {_fingerprint(key.public_bytes)}")


@app.command("rotate")
def rotate(data_dir: DataDir) -> None:
    """Make a new key pair and publish it in the node's HS_SITE.

    Running servers of the node sign with the new key within seconds; the old
    key is kept as server_key.pem.old.
    """
    settings = _settings(data_dir)
    key = rotate_server_key(data_dir)
    published = run(_publish(settings))
    console.print(f"new RSA {KEY_BITS}-bit key in {key_path(data_dir)}")
    console.print(f"fingerprint (SHA-256 of HS_PUBKEY): {_fingerprint(key.public_bytes)}")
    if published:
        console.print(f"HS_SITE of 0.NA/{settings.prefix} now carries the new key")


async def child_key(url: str, prefix: Prefix) -> tuple[bytes, str]:
    """The server key a child node publishes in its own ``0.NA/<prefix>`` HS_SITE, so a
    delegation record carries it (clients check the child's signed answers and set up
    sessions against it); empty with the reason when the child does not say."""
    from iinode.client import NodeClient

    try:
        async with NodeClient(url, timeout=3.0) as client:
            record = await client.get(prefix.na_handle)
    except IinodeError as exc:
        return b"", f"{url} did not give its server key ({exc})"
    key = site_key(record.get("values", []))
    if not key:
        return b"", f"{url} publishes no server key in {prefix.na_handle}"
    return key, ""


def fingerprint(public_bytes: bytes) -> str:
    """SHA-256 of a key's HS_PUBKEY encoding, as ``keys show`` prints it."""
    return _fingerprint(public_bytes)
