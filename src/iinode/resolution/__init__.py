"""Hierarchical resolution: the I/O-free driver, the cache and the transports."""

from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import (
    Hop,
    Query,
    RemoteAnswer,
    Resolution,
    Resolved,
    select_server,
)
from iinode.resolution.http import HttpResolver, resolve_sync
from iinode.resolution.native_admin import NativeAdminClient, PublicKeyAuth, SecretKeyAuth
from iinode.resolution.native_client import NativeClient, NativeResolver, resolve_native_sync
from iinode.resolution.native_counters import read_native_counters
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_server import NativeServer, NativeWorkers, start_native_workers
from iinode.resolution.native_sessions import NativeCounters

__all__ = [
    "Hop",
    "HttpResolver",
    "NativeAdminClient",
    "NativeClient",
    "NativeCounters",
    "NativeHandler",
    "NativeResolver",
    "NativeServer",
    "NativeWorkers",
    "PublicKeyAuth",
    "Query",
    "RemoteAnswer",
    "Resolution",
    "ResolutionCache",
    "Resolved",
    "SecretKeyAuth",
    "read_native_counters",
    "resolve_native_sync",
    "resolve_sync",
    "select_server",
    "start_native_workers",
]
