"""HTTP adapter of alarms and rules, mounted under ``/alarms``::

    GET    /alarms                       open alarms (in alarm, or cleared and not acknowledged)
    POST   /alarms/{id}/ack              acknowledge
    GET    /alarms/history               ?equipment=&limit=  transitions, newest first
    GET    /alarms/rules                 every rule
    PUT    /alarms/rules/{id}            create or replace (body: rule JSON)
    DELETE /alarms/rules/{id}

Reads are open like ``/metrics``'s KPI gauges; writes (ack, rule changes) are
authorised as handle writes: HTTP Basic credentials (``index:handle``) with the
MODIFY_VALUE permission on the rule's equipment handle (on ``0.NA/<prefix>`` for a
rule over a whole prefix), checked by :class:`HandleWriteCheck`; 401 without
credentials, 403 without the permission.  Errors answer ``{"error", "detail"}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Request, Response

from iinode.analytics.alarms import AlarmEngine, AlarmStore, Rule, Transition
from iinode.errors import HandleError, InvalidHandle, NotAuthorized, ValueInvalid
from iinode.identifiers import AdminPermission, HandleName, Prefix
from iinode.kpi import Kpis, PeriodKind, compute
from iinode.monitoring.events import EventKind, Severity
from iinode.monitoring.node import MonitoringNode
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings

from .kpi import KpiApp
from .rest_common import authenticate
from .telemetry import _AUTH_ERRORS, _error, _json, _refusal

log = logging.getLogger(__name__)

#: ``(request, target) -> who`` (the identity text), or raises a ``HandleError``.
WriteCheck = Callable[[Request, str], Awaitable[str]]


class HandleWriteCheck:
    """A write on ``target`` (an equipment handle, or a prefix) is allowed to a caller
    authenticated as a handle identity with MODIFY_VALUE on the target's record."""

    def __init__(self, service: HandleService) -> None:
        self.service = service

    async def __call__(self, request: Request, target: str) -> str:
        identity = await authenticate(self.service, request, required=True)
        assert identity is not None
        if "/" in target:
            name = HandleName.parse(target)
        else:
            name = HandleName.parse(f"0.NA/{Prefix(target).text}")
        record = await self.service.lookup(name) or ()
        await self.service.auth.require(
            identity, record, AdminPermission.MODIFY_VALUE, f"change alarms of {target}"
        )
        return str(identity)


@dataclass(slots=True)
class AlarmApp:
    engine: AlarmEngine
    #: ``None``: writes are open (tests, a node without identifiers).
    authorize: WriteCheck | None = None


async def _who(app: AlarmApp, request: Request, target: str) -> str | Response:
    if app.authorize is None:
        return "anonymous"
    try:
        return await app.authorize(request, target)
    except _AUTH_ERRORS as exc:
        return _refusal(exc)
    except NotAuthorized as exc:
        return _error(403, "forbidden", exc.message)
    except HandleError as exc:
        return _refusal(exc)


def alarm_router(app: AlarmApp, *, prefix: str = "/alarms") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["alarms"])
    engine = app.engine

    @router.get("", summary="Open alarms")
    async def list_alarms(equipment: str | None = None) -> Response:
        alarms = await asyncio.to_thread(engine.alarms)
        return _json([a.to_json() for a in alarms
                      if equipment is None or a.equipment == equipment
                      or a.equipment.startswith(equipment + "/")])  # fmt: skip

    @router.get("/history", summary="Alarm transitions, newest first")
    async def history(equipment: str | None = None, limit: int = 1000) -> Response:
        if not 1 <= limit <= 100_000:
            return _error(400, "invalid_query", "limit is 1 .. 100000")
        rows = await asyncio.to_thread(engine.store.history, equipment, limit)
        return _json(rows)

    @router.post("/{alarm_id}/ack", summary="Acknowledge an alarm")
    async def acknowledge(alarm_id: str, request: Request) -> Response:
        target = next((a.equipment for a in engine.alarms() if a.id == alarm_id), None)
        if target is None:
            return _error(404, "not_found", f"no open alarm {alarm_id}")
        who = await _who(app, request, target)
        if isinstance(who, Response):
            return who
        alarm = await asyncio.to_thread(engine.acknowledge, alarm_id, who)
        if alarm is None:
            return _error(404, "not_found", f"no open alarm {alarm_id}")
        return _json(alarm.to_json())

    @router.get("/rules", summary="Alarm rules")
    async def rules() -> Response:
        return _json([r.to_json() for r in engine.rules()])

    @router.put("/rules/{rule_id}", summary="Create or replace a rule")
    async def put_rule(rule_id: str, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            if isinstance(body, dict):
                body.setdefault("id", rule_id)
            rule = Rule.from_json(body)
            if rule.id != rule_id:
                raise ValueInvalid(f"body id {rule.id} does not match the path {rule_id}")
            if "/" in rule.equipment:
                HandleName.parse(rule.equipment)
            else:
                Prefix(rule.equipment)
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_json", str(exc))
        except (ValueInvalid, InvalidHandle) as exc:
            return _error(400, "invalid_rule", exc.message)
        old = next((r for r in engine.rules() if r.id == rule_id), None)
        for target in {rule.equipment, *(() if old is None else (old.equipment,))}:
            who = await _who(app, request, target)
            if isinstance(who, Response):
                return who
        await asyncio.to_thread(engine.put_rule, rule)
        return _json(rule.to_json())

    @router.delete("/rules/{rule_id}", summary="Delete a rule")
    async def delete_rule(rule_id: str, request: Request) -> Response:
        old = next((r for r in engine.rules() if r.id == rule_id), None)
        if old is None:
            return _error(404, "not_found", f"no rule {rule_id}")
        who = await _who(app, request, old.equipment)
        if isinstance(who, Response):
            return who
        await asyncio.to_thread(engine.delete_rule, rule_id)
        return Response(status_code=204)

    return router


def monitoring_notifier(node: MonitoringNode) -> Callable[[Transition], None]:
    """Alarm transitions as operational (``health``) monitoring events of ``node``."""
    severities = {"info": Severity.INFO, "low": Severity.LOW, "medium": Severity.MEDIUM,
                  "high": Severity.HIGH, "critical": Severity.CRITICAL}  # fmt: skip

    def notify(t: Transition) -> None:
        a = t.alarm
        try:
            asset = HandleName.parse(a.equipment) if "/" in a.equipment else None
        except InvalidHandle:
            asset = None
        severity = severities[a.severity] if t.event == "raised" else Severity.INFO
        event = node.event(
            EventKind.HEALTH, severity, asset=asset, asset_kind="equipment",
            detail={"alarm": a.id, "rule": a.rule, "event": t.event, "state": a.state.value,
                    "value": t.value, "message": a.message, "time_us": t.time_us},
        )  # fmt: skip
        node.emit([event])

    return notify


def node_alarm_app(
    kpi_app: KpiApp,
    settings: NodeSettings,
    monitoring: MonitoringNode | None,
    authorize: WriteCheck,
    spawn: Callable[[Coroutine[None, None, None]], None] | None = None,
) -> AlarmApp:
    """The node's alarms: rules and history in ``alarms.sqlite3`` of its data dir, tag rules
    fed by its ingest workers, KPI rules by the live KPI stream, transitions to ``monitoring``;
    and the failure predictor saved as ``maintenance.pickle`` there, if any (and scikit-learn).
    ``spawn`` runs the task that joins the ingest workers (for as long as the node runs)."""
    store = AlarmStore(settings.data_dir / "alarms.sqlite3")
    notify = None if monitoring is None else monitoring_notifier(monitoring)

    def kpis(equipment: str, now_us: int) -> Kpis | None:
        live = kpi_app.live
        if live is None or equipment not in live.stream.machines:
            return None
        shift = live.settings.grid.period_of(PeriodKind.SHIFT, now_us)
        return compute(live.stream.period([equipment], shift, now_us))

    engine = AlarmEngine(store, notify, kpis=kpis)
    observers: list[Callable[..., None]] = [engine.observe]
    from iinode.analytics import maintenance  # scikit-learn only if a model was saved

    predictor = maintenance.load(settings.data_dir / "maintenance.pickle")
    if predictor is not None and settings.prefix is not None:
        observers.append(maintenance.MaintenanceWatcher(predictor, engine, settings.prefix).observe)

    async def attach() -> None:
        """Join the ingest workers as they come (the lease may move); close the SQLite
        files when the node's extensions stop (they cancel this task)."""
        try:
            while True:
                await asyncio.to_thread(engine.refresh_rules)  # changed by another process
                if any(k.source.value == "kpi" for k in engine.rules()):
                    await kpi_app.attach()
                for worker in kpi_app.workers():
                    for observe in observers:
                        if observe not in worker.observers:
                            worker.observers.append(observe)
                await asyncio.sleep(1.0)
        finally:
            store.close()
            if kpi_app.projects is not None:
                kpi_app.projects.close()

    if spawn is not None:  # else mounted outside a running node: no live feed
        spawn(attach())
    return AlarmApp(engine, authorize)


__all__ = ["AlarmApp", "HandleWriteCheck", "alarm_router", "monitoring_notifier",
           "node_alarm_app"]  # fmt: skip
