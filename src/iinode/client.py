"""An async client for a node's REST API (what the CLI and the demo use to write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from iinode.codes import ResponseCode
from iinode.errors import (
    AuthenticationFailed,
    HandleError,
    HandleNotFound,
    NotAuthorized,
    OperationDenied,
    RemoteProtocolError,
    TransportError,
    ValueInvalid,
)
from iinode.identifiers import HandleName, HandleValue

#: How the telemetry and monitoring APIs' refusals become library errors.
_REFUSALS: dict[int, type[HandleError]] = {
    400: ValueInvalid,
    401: AuthenticationFailed,
    403: NotAuthorized,
    404: HandleNotFound,
    409: OperationDenied,
    413: ValueInvalid,
}


class NodeClient:
    def __init__(
        self,
        base_url: str,
        *,
        identity: str | None = None,
        secret: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        auth = None
        if identity is not None and secret is not None:
            auth = httpx.BasicAuth(quote(identity, safe="/"), secret)
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=auth, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, handle: HandleName | str, **kwargs: Any) -> dict[str, Any]:
        url = f"/api/handles/{quote(str(handle), safe='/')}"
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self._http.base_url} did not answer: {exc}") from None
        try:
            body: dict[str, Any] = response.json()
            code = ResponseCode(int(body["responseCode"]))
        except (ValueError, KeyError, TypeError):
            raise RemoteProtocolError(
                f"HTTP {response.status_code} without a Handle JSON body"
            ) from None
        if code != ResponseCode.SUCCESS and response.status_code >= 400:
            raise HandleError.for_code(code, str(body.get("message", code.to_text())), str(handle))
        return body

    async def put(
        self, handle: HandleName, values: Sequence[HandleValue], *, overwrite: bool = True
    ) -> None:
        payload = {"values": [v.to_json() for v in values]}
        params = {"overwrite": "true" if overwrite else "false"}
        await self._call("PUT", handle, json=payload, params=params)

    async def get(self, handle: HandleName) -> dict[str, Any]:
        return await self._call("GET", handle)

    async def delete(self, handle: HandleName) -> None:
        await self._call("DELETE", handle)

    # -- the node's other APIs (telemetry, monitoring) ------------------------------------
    async def call_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON API call; refusals ``{"error", "detail"}`` raise the matching error."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self._http.base_url} did not answer: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail") or body.get("error") or body)
            except ValueError:
                detail = response.text[:200]
            error = _REFUSALS.get(response.status_code)
            if error is None:
                raise TransportError(f"HTTP {response.status_code} from {path}: {detail}")
            raise error(detail)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteProtocolError(f"{path} did not answer JSON") from None

    async def node_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await self.call_json("GET", "/api/node")
        return info

    async def put_equipment(self, equipment: dict[str, Any]) -> dict[str, Any]:
        path = f"/telemetry/equipment/{quote(str(equipment['id']), safe='/')}"
        result: dict[str, Any] = await self.call_json("PUT", path, json=equipment)
        return result

    async def equipment(self, handle: str) -> dict[str, Any]:
        path = f"/telemetry/equipment/{quote(handle, safe='/')}"
        result: dict[str, Any] = await self.call_json("GET", path)
        return result

    async def list_equipment(self, prefix: str | None = None) -> list[dict[str, Any]]:
        params = {} if prefix is None else {"prefix": prefix}
        result: list[dict[str, Any]] = await self.call_json(
            "GET", "/telemetry/equipment", params=params
        )
        return result

    async def telemetry(self, handle: str, view: str, **params: Any) -> dict[str, Any]:
        """``view`` is ``live``, ``history`` or ``aggregates``; ``None`` params are left out."""
        path = f"/telemetry/equipment/{quote(handle, safe='/')}/{view}"
        query = {k: v for k, v in params.items() if v is not None}
        result: dict[str, Any] = await self.call_json("GET", path, params=query)
        return result

    async def monitoring(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.call_json(method, f"/monitoring/{path.lstrip('/')}", **kwargs)
