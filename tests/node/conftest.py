"""Fixtures of the node tests: its REST API in process and on a real port (``rest_node``)."""

from __future__ import annotations

from rest_node import SECRET, LiveNode, client, live_node, service

__all__ = ["SECRET", "LiveNode", "client", "live_node", "service"]
