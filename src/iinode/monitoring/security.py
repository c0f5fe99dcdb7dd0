"""Security events as STIX 2.1 bundles, and their monitoring ``Event`` envelopes.

Every bundle names the reporting node (an ``identity``) and, when known, the
asset: an ``infrastructure`` object named by the asset's identifier, with a
``software`` observable carrying its CPE.  Observations (authentication
failures, protocol errors, unknown devices, anomalies) are ``observed-data``;
a CVE finding is a ``vulnerability`` linked to the asset by a ``has``
relationship.  iinode's own fields use the ``x_iinode_`` custom-property
prefix: ``x_iinode_kind``, ``x_iinode_severity``, ``x_iinode_asset``.
Object ids are derived from the event id, so rebuilding a bundle gives the same
ids.
"""

from __future__ import annotations

import enum
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


class SecurityEventKind(enum.StrEnum):
    AUTH_FAILURE = "auth_failure"
    PROTOCOL_ERROR = "protocol_error"
    UNKNOWN_DEVICE = "unknown_device"
    ANOMALY = "anomaly"


def _sid(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, '|'.join(parts))}"


def _ts(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _node_identity(node: Prefix) -> stix2.v21.Identity:
    return stix2.v21.Identity(
        id=_sid("identity", "node", node.text),
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
        first_observed=_ts(observed_at if first_observed is None else first_observed),
        last_observed=_ts(observed_at),
        number_observed=count,
        object_refs=refs,
        allow_custom=True,
        x_iinode_kind=kind.value,
        x_iinode_severity=severity.label,
        x_iinode_asset=None if asset is None else str(asset),
        x_iinode_description=description,
    )
    bundle = stix2.v21.Bundle(identity, *objects, observed, allow_custom=True)
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
    vuln = stix2.v21.Vulnerability(
        id=_sid("vulnerability", cve.id),
        name=cve.id,
        description=cve.description,
        external_references=[{"source_name": "cve", "external_id": cve.id}],
        allow_custom=True,
        x_iinode_cvss_vector=cve.vector,
        x_iinode_cvss_score=cve.score,
        x_iinode_severity=cve.severity.label,
    )
    has = stix2.v21.Relationship(
        id=_sid("relationship", str(asset.handle), cve.id),
        relationship_type="has",
        source_ref=infra_id,
        target_ref=vuln.id,
        created_by_ref=identity.id,
    )
    bundle = stix2.v21.Bundle(identity, *objects, vuln, has, allow_custom=True)
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
    """Parse an event's detail back into ``stix2`` objects (validates the bundle)."""
    return stix2.parse(orjson.dumps(detail).decode(), allow_custom=True, version="2.1")


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
