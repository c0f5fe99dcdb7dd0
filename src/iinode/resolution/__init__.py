"""Hierarchical resolution: the I/O-free driver, the cache and the transports."""

from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import Hop, Query, RemoteAnswer, Resolution, Resolved
from iinode.resolution.http import HttpResolver, resolve_sync

__all__ = [
    "Hop",
    "HttpResolver",
    "Query",
    "RemoteAnswer",
    "Resolution",
    "ResolutionCache",
    "Resolved",
    "resolve_sync",
]
