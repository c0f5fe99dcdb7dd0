"""The node's assembly: ``build_node(settings) -> Node`` and the node's HTTP app.

The one place a node is put together from its typed settings, above every
other layer but the command line and the demo (see ``tests/test_layers.py``):

* ``build_node`` (:mod:`iinode.assembly.node`) opens the store, the handle
  service, the resolver and the node's metrics, and starts its extensions
  (:mod:`iinode.assembly.extensions`: monitoring, telemetry, the lease);
* ``node_app`` / ``app_for_settings`` (:mod:`iinode.assembly.app`) serve it
  over HTTP with routers that are thin adapters over those parts.

``iinode serve`` (one process, or each ``--workers`` process from the settings
the parent resolved), ``iinode demo`` and the tests use it.
"""

from iinode.assembly.app import app_for_settings, app_from_env, install_node, node_app
from iinode.assembly.extensions import NodeExtensions
from iinode.assembly.node import Node, build_node, build_resolver

__all__ = [
    "Node",
    "NodeExtensions",
    "app_for_settings",
    "app_from_env",
    "build_node",
    "build_resolver",
    "install_node",
    "node_app",
]
