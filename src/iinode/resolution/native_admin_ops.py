"""Administrative requests of the native protocol, carried out for a proven identity.

No sockets, no authentication here: ``NativeHandler`` passes the identity a
request acts as, and every operation goes through ``HandleService`` and its
``Authorizer``, exactly as the REST API does, so both front ends answer and
refuse alike.

``write``: CREATE_HANDLE (MINT: a new name under the prefix), ADD_VALUE,
MODIFY_VALUE, REMOVE_VALUE and DELETE_HANDLE.

``list_handles``: LIST_HANDLES answers are streamed: one message per
``chunk_bytes`` of handles, all but the last with the CN flag (RFC 3652 s3.8),
read from the store a page at a time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName, IndexedHandle, Prefix
from iinode.node.service import HandleService
from iinode.proto import (
    EmptyBody,
    HandleBody,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    RemoveValueRequest,
    ValuesRequest,
)

#: Handles read from the store per page while listing.
LIST_PAGE = 10_000
#: Octets of handle names per LIST_HANDLES message (each name costs 4 + its length).
LIST_CHUNK_BYTES = 256 * 1024


async def write(service: HandleService, request: Message, identity: IndexedHandle) -> Message:
    """Carry out a CREATE_HANDLE, ADD_VALUE, MODIFY_VALUE, REMOVE_VALUE or DELETE_HANDLE."""
    body = request.body
    op = request.opcode
    overwrite = bool(request.flags & OpFlag.OW)
    if op == OpCode.CREATE_HANDLE:
        assert isinstance(body, ValuesRequest)
        name = HandleName.parse(body.handle)
        if request.flags & OpFlag.MINT:
            name = service.mint(body.handle)
        await service.create(name, body.values, identity, overwrite=overwrite)
        minted = str(name) if request.flags & OpFlag.MINT else None
        return request.reply(OptionalHandleBody(minted))
    if op in (OpCode.ADD_VALUE, OpCode.MODIFY_VALUE):
        assert isinstance(body, ValuesRequest)
        name = HandleName.parse(body.handle)
        # ADD_VALUE (without OW): all indexes new; MODIFY_VALUE: all present.  The
        # service checks this against the record it replaces, atomically with the write.
        existing = None if overwrite and op == OpCode.ADD_VALUE else op == OpCode.MODIFY_VALUE
        await service.put_values(name, body.values, identity, existing=existing)
        return request.reply(EmptyBody())
    if op == OpCode.REMOVE_VALUE:
        assert isinstance(body, RemoveValueRequest)
        name = HandleName.parse(body.handle)
        await service.remove_values(name, body.indexes, identity)
        return request.reply(EmptyBody())
    assert op == OpCode.DELETE_HANDLE
    assert isinstance(body, HandleBody)
    await service.delete(HandleName.parse(body.handle), identity)
    return request.reply(EmptyBody())


async def list_handles(
    service: HandleService,
    request: Message,
    identity: IndexedHandle,
    *,
    chunk_bytes: int,
    page_size: int,
    failure: Callable[[Message, Exception], Message],
) -> AsyncGenerator[Message, None]:
    """The messages answering a LIST_HANDLES: CN on all but the last.

    The first page of ``page_size`` handles is read before this returns, so a
    refusal raises (an ordinary error answer); a failure later ends the stream
    with the message ``failure`` makes of it.
    """
    body = request.body
    assert isinstance(body, HandleBody)
    na = HandleName.parse(body.handle)
    if not na.is_na_handle:
        raise InvalidHandle(f"list handles names a prefix record 0.NA/..., not {na}")
    prefix = na.authority
    first = await service.list_after(prefix, identity, None, limit=page_size)
    chunks = _chunks(service, prefix, identity, first, chunk_bytes, page_size)
    return _messages(request, chunks, failure)


async def _chunks(
    service: HandleService,
    prefix: Prefix,
    identity: IndexedHandle,
    page: list[str],
    budget: int,
    page_size: int,
) -> AsyncIterator[tuple[str, ...]]:
    """The handles under ``prefix`` in chunks of at most ``budget`` octets.

    Pages by keyset (each page starts after the last handle of the one before).
    """
    chunk: list[str] = []
    size = 0
    while True:
        for handle in page:
            cost = 4 + len(handle.encode())
            if chunk and size + cost > budget:
                yield tuple(chunk)
                chunk, size = [], 0
            chunk.append(handle)
            size += cost
        if len(page) < page_size:
            break
        page = await service.list_after(prefix, identity, page[-1], limit=page_size)
    yield tuple(chunk)


async def _messages(
    request: Message,
    chunks: AsyncIterator[tuple[str, ...]],
    failure: Callable[[Message, Exception], Message],
) -> AsyncGenerator[Message, None]:
    """One message per chunk, CN on all but the last; a failure ends the list."""
    held: tuple[str, ...] | None = None
    try:
        async for chunk in chunks:
            if held is not None:
                yield request.reply(ListHandlesResponse(held), flags=OpFlag.CN)
            held = chunk
    except Exception as exc:
        yield failure(request, exc)
        return
    yield request.reply(ListHandlesResponse(held or ()))


__all__ = ["LIST_CHUNK_BYTES", "LIST_PAGE", "list_handles", "write"]
