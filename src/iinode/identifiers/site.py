"""HS_SITE: where a handle service is served (RFC 3651 section 3.2.2).

A site is a list of servers; each server has an address and interfaces
(service type, transmission protocol, port).  Delegation records carry an
HS_SITE so that anyone can follow a prefix to the node that owns it; an
``HTTP`` interface gives the node's REST base URL.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

from iinode.errors import RemoteProtocolError, ValueInvalid
from iinode.identifiers.data import JsonData, ValueData
from iinode.identifiers.wire import WireReader, WireWriter


class ServiceType(enum.IntEnum):
    OUT_OF_SERVICE = 0
    ADMIN = 1
    QUERY = 2
    ADMIN_AND_QUERY = 3


class TransportProtocol(enum.IntEnum):
    UDP = 0
    TCP = 1
    HTTP = 2
    HTTPS = 3


class HashOption(enum.IntEnum):
    """How a client picks one server of a multi-server site (RFC 3652 section 3.4)."""

    BY_PREFIX = 0
    BY_SUFFIX = 1
    BY_HANDLE = 2


PRIMARY_SITE = 0x80
MULTI_PRIMARY = 0x40


@dataclass(frozen=True, slots=True)
class Interface:
    service: ServiceType
    protocol: TransportProtocol
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueInvalid(f"interface port {self.port} is out of range 1..65535")

    @property
    def can_query(self) -> bool:
        return self.service in (ServiceType.QUERY, ServiceType.ADMIN_AND_QUERY)

    @property
    def can_admin(self) -> bool:
        return self.service in (ServiceType.ADMIN, ServiceType.ADMIN_AND_QUERY)


@dataclass(frozen=True, slots=True)
class Server:
    server_id: int
    address: str
    interfaces: tuple[Interface, ...]
    public_key: bytes = b""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueInvalid(f"server address {self.address!r} is not an IP address") from None

    def interface(self, protocol: TransportProtocol) -> Interface | None:
        """The first query interface speaking ``protocol``, if any."""
        for itf in self.interfaces:
            if itf.protocol == protocol and itf.can_query:
                return itf
        return None

    def http_url(self) -> str | None:
        for proto, scheme in ((TransportProtocol.HTTPS, "https"), (TransportProtocol.HTTP, "http")):
            itf = self.interface(proto)
            if itf is not None:
                ip = ipaddress.ip_address(self.address)
                host = f"[{ip}]" if ip.version == 6 else str(ip)
                return f"{scheme}://{host}:{itf.port}"
        return None


def _address_to_wire(address: str) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return bytes(12) + ip.packed
    return ip.packed


def _address_from_wire(raw: bytes) -> str:
    if raw[:12] == bytes(12) or raw[:12] == bytes(10) + b"\xff\xff":
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


@dataclass(frozen=True, slots=True)
class SiteData(ValueData):
    servers: tuple[Server, ...]
    serial: int = 1
    primary: bool = True
    multi_primary: bool = False
    hash_option: HashOption = HashOption.BY_HANDLE
    hash_filter: str = ""
    attributes: tuple[tuple[str, str], ...] = field(default=())
    version: int = 1
    protocol_version: tuple[int, int] = (2, 10)
    format: ClassVar[str] = "site"

    def http_urls(self) -> list[str]:
        return [u for s in self.servers if (u := s.http_url()) is not None]

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def to_wire(self) -> bytes:
        w = WireWriter().u16(self.version)
        w.u8(self.protocol_version[0]).u8(self.protocol_version[1]).u16(self.serial)
        mask = (PRIMARY_SITE if self.primary else 0) | (MULTI_PRIMARY if self.multi_primary else 0)
        w.u8(mask).u8(int(self.hash_option)).utf8(self.hash_filter)
        w.u32(len(self.attributes))
        for key, value in self.attributes:
            w.utf8(key).utf8(value)
        w.u32(len(self.servers))
        for srv in self.servers:
            w.u32(srv.server_id).raw(_address_to_wire(srv.address)).byte_string(srv.public_key)
            w.u32(len(srv.interfaces))
            for itf in srv.interfaces:
                w.u8(int(itf.service)).u8(int(itf.protocol)).u32(itf.port)
        return w.getvalue()

    @classmethod
    def from_wire(cls, raw: bytes) -> Self:
        r = WireReader(raw)
        version = r.u16("site version")
        major, minor = r.u8("protocol major"), r.u8("protocol minor")
        serial = r.u16("site serial")
        mask = r.u8("primary mask")
        hash_option = r.u8("hash option")
        hash_filter = r.utf8("hash filter")
        attrs = [
            (r.utf8("attribute name"), r.utf8("attribute value"))
            for _ in range(r.count("attributes", 8))
        ]
        servers = []
        for _ in range(r.count("servers", 28)):
            server_id = r.u32("server id")
            address = _address_from_wire(r.raw(16, "server address"))
            public_key = r.byte_string("server public key")
            interfaces = []
            for _ in range(r.count("interfaces", 6)):
                st, tp, port = r.u8("service type"), r.u8("protocol"), r.u32("port")
                try:
                    interfaces.append(Interface(ServiceType(st), TransportProtocol(tp), port))
                except ValueError as exc:
                    raise RemoteProtocolError(f"invalid site interface: {exc}") from None
            servers.append(Server(server_id, address, tuple(interfaces), public_key))
        r.expect_end("HS_SITE")
        try:
            option = HashOption(hash_option)
        except ValueError:
            raise RemoteProtocolError(f"unknown hash option {hash_option}") from None
        return cls(
            tuple(servers), serial, bool(mask & PRIMARY_SITE), bool(mask & MULTI_PRIMARY),
            option, hash_filter, tuple(attrs), version, (major, minor),
        )  # fmt: skip

    def to_json(self) -> JsonData:
        return {
            "format": "site",
            "value": {
                "version": self.version,
                "protocolVersion": f"{self.protocol_version[0]}.{self.protocol_version[1]}",
                "serialNumber": self.serial,
                "primaryMask": {"primary": self.primary, "multiPrimary": self.multi_primary},
                "hashOption": int(self.hash_option),
                "hashFilter": self.hash_filter,
                "attributes": [{"name": k, "value": v} for k, v in self.attributes],
                "servers": [
                    {
                        "serverId": s.server_id,
                        "address": s.address,
                        "publicKey": {"format": "base64", "value": _b64(s.public_key)},
                        "interfaces": [
                            {
                                "query": i.can_query,
                                "admin": i.can_admin,
                                "protocol": i.protocol.name,
                                "port": i.port,
                            }
                            for i in s.interfaces
                        ],
                    }
                    for s in self.servers
                ],
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict) or data.get("format", "site") != "site":
            raise ValueInvalid("HS_SITE data must have format 'site'")
        v = data.get("value")
        if not isinstance(v, dict):
            raise ValueInvalid("HS_SITE value must be an object")
        try:
            major, _, minor = str(v.get("protocolVersion", "2.10")).partition(".")
            mask = v.get("primaryMask", {})
            servers = tuple(_server_from_json(s) for s in v.get("servers", []))
            attrs = tuple((str(a["name"]), str(a["value"])) for a in v.get("attributes", []))
            return cls(
                servers,
                int(v.get("serialNumber", 1)),
                bool(mask.get("primary", True)),
                bool(mask.get("multiPrimary", False)),
                HashOption(int(v.get("hashOption", 2))),
                str(v.get("hashFilter", "")),
                attrs,
                int(v.get("version", 1)),
                (int(major), int(minor or 0)),
            )
        except ValueInvalid:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueInvalid(f"HS_SITE value is malformed: {exc}") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _server_from_json(s: dict[str, Any]) -> Server:
    interfaces = []
    for i in s.get("interfaces", []):
        query, admin = bool(i.get("query", True)), bool(i.get("admin", False))
        service = ServiceType((2 if query else 0) | (1 if admin else 0))
        interfaces.append(
            Interface(service, TransportProtocol[str(i["protocol"]).upper()], int(i["port"]))
        )
    key = s.get("publicKey", {})
    public_key = base64.b64decode(key.get("value", "")) if isinstance(key, dict) else b""
    return Server(int(s.get("serverId", 1)), str(s["address"]), tuple(interfaces), public_key)


def site_for(
    host: str,
    *,
    http_port: int | None = None,
    handle_port: int | None = None,
    description: str = "",
    public_key: bytes = b"",
) -> SiteData:
    """A one-server site for a node at ``host`` with the given ports.

    ``public_key`` is the server's key in the HS_PUBKEY encoding (RFC 3651
    s3.2.2: each server record carries it), what clients check signed answers
    and Diffie-Hellman sessions against; empty when the node has none.
    """
    interfaces: list[Interface] = []
    if handle_port is not None:
        interfaces.append(
            Interface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP, handle_port)
        )
        interfaces.append(Interface(ServiceType.QUERY, TransportProtocol.UDP, handle_port))
    if http_port is not None:
        interfaces.append(Interface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.HTTP, http_port))
    attrs = (("desc", description),) if description else ()
    return SiteData((Server(1, host, tuple(interfaces), public_key),), attributes=attrs)


def with_public_key(site: SiteData, public_key: bytes) -> SiteData:
    """``site`` with every server record carrying ``public_key`` (a one-node site)."""
    servers = tuple(replace(s, public_key=public_key) for s in site.servers)
    return replace(site, servers=servers)
