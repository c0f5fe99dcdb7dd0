"""HS_SITE values for nodes known by their HTTP base URL (the parent's, a child's)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from iinode.errors import ValueInvalid
from iinode.identifiers import SiteData, site_for
from iinode.identifiers.site import with_public_key

#: Seconds the parent's site is reused for referrals once its key is known (or when it
#: has no native port to ask), and before asking again when the parent did not answer.
PARENT_SITE_TTL = 300.0
PARENT_SITE_RETRY = 10.0


def site_from_url(url: str, handle_port: int | None = None, public_key: bytes = b"") -> SiteData:
    """A one-server HS_SITE for a node's HTTP base URL ``http://HOST:PORT``
    (and its native Handle port on the same host, if given; and its server key
    in the HS_PUBKEY encoding, if known: see ``site_key``).

    A host name is resolved here (a blocking DNS query): call it at start-up or
    from a worker thread, not per request on the event loop.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueInvalid(f"{url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueInvalid(f"{url!r} is not an http(s)://HOST:PORT URL")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = socket.gethostbyname(host)
        except (OSError, UnicodeError):
            raise ValueInvalid(f"cannot resolve the host of {url!r}") from None
    return site_for(host, http_port=port, handle_port=handle_port, public_key=public_key)


#: Asks the server at ``(host, port)`` for its key (HS_PUBKEY encoding; empty if it did not
#: answer): ``resolution.native_trust.learn_server_key``, passed in from above.
KeyLearner = Callable[[tuple[str, int]], Awaitable[bytes]]


async def parent_site(
    url: str, handle_port: int | None, *, learn_key: KeyLearner | None
) -> tuple[SiteData, float]:
    """The parent's HS_SITE for referrals upward, and for how many seconds to keep it.

    Made from ``parent_url`` (its host resolved in a worker thread) and
    ``parent_handle_port``; with a native port, it carries the server key the
    parent's server proves it holds (``native_trust.learn_server_key``: a
    certified GET_SITEINFO whose signature verifies with a key the answer names),
    so that clients following the referral, and this node taking the parent's
    VERIFY_RESPONSE verdicts, check the parent's signatures.  A parent that does
    not answer is asked again after ``PARENT_SITE_RETRY`` seconds.  ``learn_key`` is
    the function that asks (a ``KeyLearner``, given by whoever builds the node);
    ``None`` (a recursive node, which resolves through its parent rather than refer
    to it, or a node built without a native client) skips the question.
    """
    site = await asyncio.to_thread(site_from_url, url, handle_port)
    if handle_port is None or learn_key is None:
        return site, PARENT_SITE_TTL
    address = site.servers[0].address
    key = await learn_key((address, handle_port))
    if not key:
        return site, PARENT_SITE_RETRY
    return with_public_key(site, key), PARENT_SITE_TTL


def site_key(values: list[dict[str, Any]]) -> bytes:
    """The server key in the first HS_SITE among a record's values as the REST API
    gives them (``GET /api/handles/0.NA/<prefix>``); empty if there is none."""
    for value in values:
        if str(value.get("type", "")).upper() != "HS_SITE":
            continue
        try:
            site = SiteData.from_json(value.get("data"))
        except ValueInvalid:
            continue
        for server in site.servers:
            if server.public_key:
                return server.public_key
    return b""


__all__ = [
    "PARENT_SITE_RETRY",
    "PARENT_SITE_TTL",
    "KeyLearner",
    "parent_site",
    "site_from_url",
    "site_key",
]
