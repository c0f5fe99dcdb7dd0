"""The OID front end over HTTP: ``GET /oid/{oid}``.

Resolves an OID delegated to this node (``node.oid``: an ``II_OID`` value on a
record, or an arc mapped to a prefix in ``0.NA/<prefix>``) to the identifier
record and answers it as ``GET /api/handles/{handle}`` would (Handle JSON, the
same read permissions: restricted values only for identities with READ_VALUE),
plus ``"oid"``.  A malformed OID is 400 (responseCode 102); an OID nothing maps
is 404 (responseCode 100).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from iinode.api.handles import referral_response
from iinode.api.rest_common import authenticate, json_response
from iinode.codes import ResponseCode
from iinode.errors import HandleNotFound
from iinode.node.oid import parse_oid, resolve_oid
from iinode.node.service import HandleService


def oid_router(service: HandleService) -> APIRouter:
    router = APIRouter(tags=["oid"])

    @router.get("/oid/{oid:path}", summary="Resolve an OID to its identifier record")
    async def resolve(request: Request, oid: str) -> Response:
        dotted = parse_oid(oid)
        handle = await resolve_oid(service.store, dotted)
        if handle is None:
            raise HandleNotFound(f"no identifier is mapped to OID {dotted}")
        identity = await authenticate(service, request, required=False)
        types = request.query_params.getlist("type")
        answer = await service.answer(handle, identity=identity, types=types)
        if answer.is_referral:
            return referral_response(answer, request)
        values = answer.values
        return json_response(
            {
                "responseCode": 1 if values else int(ResponseCode.VALUES_NOT_FOUND),
                "oid": dotted,
                "handle": str(handle),
                "values": [v.to_json() for v in values],
            }
        )

    return router


__all__ = ["oid_router"]
