"""Security events as STIX 2.1 bundles, and their monitoring ``Event`` envelopes.

Every bundle names the reporting node (an ``identity``) and, when known, the
asset: an ``infrastructure`` object named by the asset's identifier, with a
``software`` observable carrying its CPE.  Observations (authentication
failures, protocol errors, unknown devices, anomalies) are ``observed-data``;
a CVE finding is a ``vulnerability`` linked to the asset by a ``has``
relationship.

iinode's own properties travel in a STIX 2.1 property extension, defined by
the ``extension-definition`` object every bundle carries (``EXTENSION_ID``,
fixed): ``kind``, ``severity``, ``asset`` and ``description`` on
``observed-data``; ``cvss_vector``, ``cvss_score`` and ``severity`` on a
``vulnerability``.  So bundles parse with ``stix2`` without ``allow_custom``
(``parse_bundle``); ``iinode_properties`` reads the extension of an object.

Ids: domain and relationship objects get UUIDv4 ids, as STIX 2.1 asks, made
from a hash of what they name (the node, the asset, the CVE, the event), so
every rebuild and every node agrees on them; cyber observables (``software``,
addresses) keep the deterministic UUIDv5 ids ``stix2`` derives from their
contributing properties.  One id always carries one ``created`` (and, until
the thing changes, one ``modified``): an observation the time it was made; a
vulnerability the CVE's publication (``modified``: its last modification in
the feed); the node, an asset, their relationships and the extension
definition the fixed ``STABLE_CREATED``.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import stix2

from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.inventory import Asset
from iinode.monitoring.vulns import CveEntry, CveFeed

_NAMESPACE = uuid.UUID("6b7e3f0e-5b1a-4c55-9a51-2f0d54a6c1e7")

#: ``created`` (and ``modified``) of objects named by stable things: the node, an asset,
#: an asset's relationship to a CVE, the extension definition.
STABLE_CREATED = datetime(2024, 1, 1, tzinfo=UTC)
#: The id of iinode's STIX extension definition (fixed: it names the definition).
EXTENSION_ID = "extension-definition--3f0d7c2e-8a5b-4d1e-9c6f-2b7a4e8d1c90"
#: The identity that publishes the extension definition (the iinode project).
_PUBLISHER_ID = "identity--a4c2e6f1-7b3d-4e9a-8f5c-1d2b3c4e5f60"
_EXTENSION_SCHEMA = (
    "iinode monitoring properties. On observed-data: kind (auth_failure, protocol_error,"
    " unknown_device, anomaly), severity (info, low, medium, high, critical), asset (the"
    " Handle identifier of the asset concerned), description (what was observed). On"
    " vulnerability: cvss_vector (the CVSS vector string), cvss_score (the base score"
    " recomputed from it), severity (its qualitative rating)."
)


def _extension_definition() -> stix2.v21.ExtensionDefinition:
    return stix2.v21.ExtensionDefinition(
        id=EXTENSION_ID,
        created_by_ref=_PUBLISHER_ID,
        created=STABLE_CREATED,
        modified=STABLE_CREATED,
        name="iinode monitoring properties",
        description="Properties iinode nodes add to the STIX objects they report upward.",
        schema=_EXTENSION_SCHEMA,
        version="1.0.0",
        extension_types=["property-extension"],
    )


_DEFINITION = _extension_definition()


def _extension(**properties: object) -> dict[str, dict[str, object]]:
    """The ``extensions`` property carrying iinode's properties (``None`` left out)."""
    values = {k: v for k, v in properties.items() if v is not None}
    return {EXTENSION_ID: {"extension_type": "property-extension", **values}}


def iinode_properties(obj: Any) -> dict[str, Any]:
    """iinode's properties of a parsed STIX object (empty if it has none)."""
    extensions = obj.get("extensions") or {}
    found = extensions.get(EXTENSION_ID) or {}
    return {k: v for k, v in dict(found).items() if k != "extension_type"}


class SecurityEventKind(enum.StrEnum):
    AUTH_FAILURE = "auth_failure"
    PROTOCOL_ERROR = "protocol_error"
    UNKNOWN_DEVICE = "unknown_device"
    ANOMALY = "anomaly"


def _sid(kind: str, *parts: str) -> str:
    """A UUIDv4-form id made from a hash of what the object names (same parts, same id)."""
    digest = hashlib.sha256(_NAMESPACE.bytes + "|".join((kind, *parts)).encode()).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


def _nvd_time(text: str) -> datetime | None:
    """An NVD timestamp (``2020-07-14T14:15:00.000``, UTC) as a datetime, if it is one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ts(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _node_identity(node: Prefix) -> stix2.v21.Identity:
    return stix2.v21.Identity(
        id=_sid("identity", "node", node.text),
        created=STABLE_CREATED,
        modified=STABLE_CREATED,
        name=f"iinode {node.text}",
        identity_class="system",
    )


def _asset_objects(
    asset: HandleName | None, cpes: Sequence[Cpe], created_by: str
) -> tuple[list[Any], str | None]:
    if asset is None:
        return [], None
    infra = stix2.v21.Infrastructure(
        id=_sid("infrastructure", "asset", str(asset)),
        created=STABLE_CREATED,
        modified=STABLE_CREATED,
        name=str(asset),
        created_by_ref=created_by,
    )
    software = [
        stix2.v21.Software(name=c.product, cpe=str(c), vendor=c.vendor, version=c.version)
        for c in cpes
    ]
    return [infra, *software], infra.id


def observation_event(
    event_id: str,
    node: Prefix,
    kind: SecurityEventKind,
    severity: Severity,
    observed_at: float,
    description: str,
    *,
    province: str = "",
    industry: str = "",
    asset: HandleName | None = None,
    asset_kind: str = "",
    cpes: Sequence[Cpe] = (),
    source_ip: str | None = None,
    count: int = 1,
    first_observed: float | None = None,
) -> Event:
    """A security observation as a ``security`` event whose detail is a STIX bundle.

    ``count`` observations between ``first_observed`` (default ``observed_at``)
    and ``observed_at`` become one ``observed-data`` with ``number_observed``.
    """
    identity = _node_identity(node)
    objects, _ = _asset_objects(asset, cpes, identity.id)
    refs = [o.id for o in objects if o.type == "software"]
    if source_ip is not None:
        v6 = ":" in source_ip
        ip = (stix2.v21.IPv6Address if v6 else stix2.v21.IPv4Address)(value=source_ip)
        objects.append(ip)
        refs.append(ip.id)
    if not refs:
        marker = stix2.v21.Software(name=f"iinode node {node.text}")
        objects.append(marker)
        refs.append(marker.id)
    observed = stix2.v21.ObservedData(
        id=_sid("observed-data", node.text, event_id),
        created_by_ref=identity.id,
        created=_ts(observed_at),
        modified=_ts(observed_at),
        first_observed=_ts(observed_at if first_observed is None else first_observed),
        last_observed=_ts(observed_at),
        number_observed=count,
        object_refs=refs,
        extensions=_extension(
            kind=kind.value,
            severity=severity.label,
            asset=None if asset is None else str(asset),
            description=description,
        ),
    )
    bundle = stix2.v21.Bundle(_DEFINITION, identity, *objects, observed)
    return Event(
        id=event_id,
        origin=node,
        kind=EventKind.SECURITY,
        severity=severity,
        observed_at=observed_at,
        province=province,
        industry=industry,
        asset=asset,
        asset_kind=asset_kind,
        detail=orjson.loads(bundle.serialize()),
    )


def finding_event(
    node: Prefix,
    asset: Asset,
    cve: CveEntry,
    affected: Sequence[Cpe],
    observed_at: float,
    *,
    province: str = "",
    industry: str = "",
) -> Event:
    """A CVE finding on an asset; the event id is stable per (asset, CVE)."""
    identity = _node_identity(node)
    objects, infra_id = _asset_objects(asset.handle, affected, identity.id)
    published = _nvd_time(cve.published) or STABLE_CREATED
    changed = max(published, _nvd_time(cve.last_modified) or published)
    vuln = stix2.v21.Vulnerability(
        id=_sid("vulnerability", cve.id),
        created=published,
        modified=changed,
        name=cve.id,
        description=cve.description,
        external_references=[{"source_name": "cve", "external_id": cve.id}],
        extensions=_extension(
            cvss_vector=cve.vector, cvss_score=cve.score, severity=cve.severity.label
        ),
    )
    has = stix2.v21.Relationship(
        id=_sid("relationship", str(asset.handle), cve.id),
        created=STABLE_CREATED,
        modified=STABLE_CREATED,
        relationship_type="has",
        source_ref=infra_id,
        target_ref=vuln.id,
        created_by_ref=identity.id,
    )
    bundle = stix2.v21.Bundle(_DEFINITION, identity, *objects, vuln, has)
    return Event(
        id=f"finding.{uuid.uuid5(_NAMESPACE, f'{asset.handle}|{cve.id}').hex}",
        origin=node,
        kind=EventKind.FINDING,
        severity=cve.severity,
        observed_at=observed_at,
        province=province,
        industry=industry,
        asset=asset.handle,
        asset_kind=asset.kind.value,
        detail=orjson.loads(bundle.serialize()),
    )


def parse_bundle(detail: dict[str, Any]) -> Any:
    """Parse an event's detail back into ``stix2`` objects (validates the bundle; no
    custom properties are allowed: iinode's travel in its extension)."""
    return stix2.parse(orjson.dumps(detail).decode(), allow_custom=False, version="2.1")


def scan_inventory(
    node: Prefix,
    assets: Sequence[Asset],
    feed: CveFeed,
    observed_at: float,
    *,
    province: str = "",
    industry: str = "",
) -> list[Event]:
    """Finding events for every (asset, CVE) pair the feed matches."""
    out: list[Event] = []
    for asset in assets:
        for cve, affected in feed.match(asset.cpes):
            out.append(
                finding_event(
                    node, asset, cve, affected, observed_at, province=province, industry=industry
                )
            )
    return out
