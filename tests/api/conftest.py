"""Fixtures of the REST tests here: a node's API in process (``rest_node``)."""

from __future__ import annotations

from rest_node import client, service

__all__ = ["client", "service"]
