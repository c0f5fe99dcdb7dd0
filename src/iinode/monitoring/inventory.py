"""Asset inventory of an enterprise node, with vendor/product/version as CPE 2.3 names.

Assets come from the equipment registry (every registered machine) and from
what connectors discover: OPC UA ``BuildInfo``, Modbus "Read Device
Identification" objects, Sparkplug B edge-node properties.  ``describe_asset``
normalises the free text these report into the names the NVD dictionary uses:
an operating-system/firmware name (part ``o``, product ``<model>_firmware``)
carrying the version, and a hardware name (part ``h``, the model) - the pair
NVD configurations combine with AND.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from iinode.identifiers import HandleName
from iinode.monitoring.cpe import Cpe, normalise

#: Vendor strings devices report, mapped to NVD vendor names.
VENDOR_ALIASES = {
    "siemens": "siemens",
    "siemens ag": "siemens",
    "schneider electric": "schneider-electric",
    "schneider electric se": "schneider-electric",
    "schneider": "schneider-electric",
    "telemecanique": "schneider-electric",
    "rockwell automation": "rockwellautomation",
    "rockwell": "rockwellautomation",
    "allen-bradley": "rockwellautomation",
    "mitsubishi electric": "mitsubishielectric",
    "omron": "omron",
    "abb": "abb",
}


class AssetKind(enum.StrEnum):
    PLC = "plc"
    HMI = "hmi"
    SWITCH = "switch"
    GATEWAY = "gateway"
    ROBOT = "robot"
    SENSOR = "sensor"
    DRIVE = "drive"
    SERVER = "server"
    OTHER = "other"


class AssetSource(enum.StrEnum):
    REGISTRY = "registry"
    OPCUA = "opcua"
    MODBUS = "modbus"
    MQTT = "mqtt"


@dataclass(frozen=True, slots=True)
class Asset:
    handle: HandleName
    kind: AssetKind
    vendor: str
    product: str
    version: str
    source: AssetSource
    cpes: tuple[Cpe, ...]


def vendor_name(text: str) -> str:
    key = re.sub(r"[\s,.]+", " ", text.strip().lower()).strip()
    return VENDOR_ALIASES.get(key, normalise(key))


def version_name(text: str) -> str:
    """``V4.4.0`` and ``v4.4.0`` to ``4.4.0``; empty to NA."""
    v = text.strip()
    if v[:1] in "vV" and v[1:2].isdigit():
        v = v[1:]
    return normalise(v)


def describe_asset(
    handle: HandleName,
    kind: AssetKind,
    vendor: str,
    product: str,
    version: str,
    source: AssetSource = AssetSource.REGISTRY,
) -> Asset:
    v = vendor_name(vendor)
    model = normalise(product)
    cpes = (
        Cpe("o", v, f"{model}_firmware", version_name(version)),
        Cpe("h", v, model, "-"),
    )
    return Asset(handle, kind, vendor, product, version, source, cpes)


def from_opcua_build_info(
    handle: HandleName,
    manufacturer: str,
    product: str,
    software_version: str,
    kind: AssetKind = AssetKind.PLC,
) -> Asset:
    """From an OPC UA server's ``BuildInfo`` (ManufacturerName, ProductName, SoftwareVersion)."""
    return describe_asset(handle, kind, manufacturer, product, software_version, AssetSource.OPCUA)


def from_modbus_identity(
    handle: HandleName, objects: dict[int, str], kind: AssetKind = AssetKind.PLC
) -> Asset:
    """From Modbus device identification objects (0 VendorName, 4 ProductName, 2 Revision).

    Object 4 (ProductName, regular category) names the model; devices that
    only answer the basic category give the product code (object 1) instead.
    """
    product = objects.get(4) or objects.get(1, "")
    return describe_asset(
        handle, kind, objects.get(0, ""), product, objects.get(2, ""), AssetSource.MODBUS
    )


class AssetInventory:
    """The enterprise's assets, by handle; later discoveries replace earlier ones."""

    def __init__(self) -> None:
        self._assets: dict[HandleName, Asset] = {}

    def add(self, asset: Asset) -> None:
        self._assets[asset.handle] = asset

    def get(self, handle: HandleName) -> Asset | None:
        return self._assets.get(handle)

    def __iter__(self) -> Iterator[Asset]:
        return iter(sorted(self._assets.values(), key=lambda a: a.handle))

    def __len__(self) -> int:
        return len(self._assets)
