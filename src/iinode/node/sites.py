"""HS_SITE values for nodes known by their HTTP base URL."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from iinode.errors import ValueInvalid
from iinode.identifiers import SiteData, site_for


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


__all__ = ["site_from_url", "site_key"]
