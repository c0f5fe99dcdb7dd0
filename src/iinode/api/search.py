"""Search and reverse lookup over HTTP: ``GET /api/search``.

``GET /api/search?template=<handle>&attr.<name>=<value>&q=<words>&url=<url>&oid=<oid>
&prefix=<p>&after=<handle>&limit=<n>`` answers ``{"handles": [...], "next": <handle or null>}``:
the identifiers matching every condition, sorted by handle (``q=``: every word,
as ``storage.words`` splits it, in a value of a template's ``fulltext``
attributes; each word counts as one condition); pass ``next`` as
``after`` for the following page (keyset paging: each page is an index seek).
With only ``prefix=`` it lists the prefix.

Anonymous callers (and identities without READ_VALUE on the prefix) match
public values only, so a restricted attribute cannot be probed by value; the
node's administrators, or with ``prefix=`` an identity the prefix record
``0.NA/<prefix>`` grants READ_VALUE, match restricted values too.  Search reads
this node's store only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from iinode.api.rest_common import authenticate, json_response
from iinode.errors import AuthenticationNeeded, InvalidHandle, ValueInvalid
from iinode.identifiers import AdminPermission, HandleName, Prefix
from iinode.node.oid import parse_oid
from iinode.node.record_rules import admins_of
from iinode.node.service import HandleService
from iinode.storage.search import MAX_SEARCH_LIMIT, SearchQuery
from iinode.storage.words import words

#: Conditions one search may combine.
MAX_TERMS = 8


def query_of(request: Request) -> SearchQuery:
    """The search a request asks for (400 for anything malformed)."""
    terms: list[tuple[str, str]] = []
    prefix = after = None
    limit = 100
    for key, value in request.query_params.multi_items():
        if key == "template":
            try:
                terms.append(("template", str(HandleName.parse(value))))
            except InvalidHandle:
                raise ValueInvalid(f"template={value[:64]!r} is not a handle") from None
        elif key == "url":
            terms.append(("url", value))
        elif key == "oid":
            terms.append(("oid", parse_oid(value)))
        elif key == "q":
            found = words(value)
            if not found:
                raise ValueInvalid("q= has no words to search for (letters or digits)")
            terms += [("words", w) for w in found]
        elif key.startswith("attr."):
            name = key.removeprefix("attr.")
            if not name:
                raise ValueInvalid("attr.<name>= needs an attribute name")
            terms.append((f"attr:{name}", value))
        elif key == "prefix":
            try:
                prefix = Prefix(value.removeprefix("0.NA/")).text
            except InvalidHandle:
                raise ValueInvalid(f"prefix={value[:64]!r} is not a prefix") from None
        elif key == "after":
            after = value
        elif key == "limit":
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_SEARCH_LIMIT:
                raise ValueInvalid(f"limit must be within 1..{MAX_SEARCH_LIMIT}")
            limit = int(value)
        else:
            raise ValueInvalid(f"unknown search parameter {key[:64]!r}")
    if len(terms) > MAX_TERMS:
        raise ValueInvalid(f"a search combines at most {MAX_TERMS} conditions")
    if any(not v for _, v in terms):
        raise ValueInvalid("a search condition needs a value")
    return SearchQuery(tuple(terms), prefix=prefix, after=after, limit=limit)


def search_router(service: HandleService) -> APIRouter:
    router = APIRouter(tags=["search"])

    @router.get(
        "/api/search",
        summary="Find identifiers by template, attribute values, words, URL or OID, under a prefix",
        openapi_extra={
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("template", "attr.<name>", "q", "url", "oid", "prefix", "after")
            ]
            + [{"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}}]
        },
    )
    async def search(request: Request) -> Response:
        query = query_of(request)
        identity = await authenticate(service, request, required=False)
        if identity is not None:
            if service.auth.is_node_admin(identity):
                query = _with_hidden(query)
            elif query.prefix is not None:
                na = await service.lookup(Prefix(query.prefix).na_handle)
                if await service.auth.allowed(
                    identity, admins_of(na or ()), AdminPermission.READ_VALUE
                ):
                    query = _with_hidden(query)
        if not query.terms and query.prefix is not None:
            # Only a prefix: a listing, with the listing's authorisation.
            if identity is None:
                raise AuthenticationNeeded("listing a prefix needs HTTP Basic authentication")
            na = await service.lookup(Prefix(query.prefix).na_handle)
            await service.auth.require(
                identity, admins_of(na or ()), AdminPermission.LIST_HANDLES, f"list {query.prefix}"
            )
        handles = await service.store.search(query)
        full = len(handles) == query.limit
        return json_response({"handles": handles, "next": handles[-1] if full else None})

    return router


def _with_hidden(query: SearchQuery) -> SearchQuery:
    return SearchQuery(query.terms, query.prefix, query.after, query.limit, public_only=False)


__all__ = ["MAX_TERMS", "query_of", "search_router"]
