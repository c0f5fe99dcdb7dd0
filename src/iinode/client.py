"""An async client for a node's REST API (what the CLI and the demo use to write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from iinode.codes import ResponseCode
from iinode.errors import HandleError, RemoteProtocolError, TransportError
from iinode.identifiers import HandleName, HandleValue


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
