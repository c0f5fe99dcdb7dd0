"""The node's web console and offline API documentation (see ``iinode.web.routes``)."""

from iinode.web.routes import STATIC_DIR, mount_console

__all__ = ["STATIC_DIR", "mount_console"]
