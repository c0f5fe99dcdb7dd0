"""iinode: an Industrial Internet node (identifier resolution, equipment, monitoring)."""

__version__ = "0.1.0"
