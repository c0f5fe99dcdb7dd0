"""GS1 Digital Link: AI table, URI syntax, compression and links (stdlib only).

The HTTP resolver built on it is :mod:`iinode.api.gs1`.
"""

from iinode.gs1.ai import (
    AI_TABLE,
    PRIMARY_KEYS,
    ApplicationIdentifier,
    DigitalLinkError,
    check_digit,
    validate,
)
from iinode.gs1.compression import compress, decompress_elements, decompress_path, looks_compressed
from iinode.gs1.links import (
    GS1_VOC,
    LINKSET_CONTEXT,
    LINKSET_MEDIA_TYPE,
    Choice,
    Link,
    Request,
    check_one_default,
    choose,
    effective_links,
    linkset,
    normalise_link_type,
    parse_weighted,
)
from iinode.gs1.syntax import DigitalLink, from_elements, parse_path

__all__ = [
    "AI_TABLE",
    "GS1_VOC",
    "LINKSET_CONTEXT",
    "LINKSET_MEDIA_TYPE",
    "PRIMARY_KEYS",
    "ApplicationIdentifier",
    "Choice",
    "DigitalLink",
    "DigitalLinkError",
    "Link",
    "Request",
    "check_digit",
    "check_one_default",
    "choose",
    "compress",
    "decompress_elements",
    "decompress_path",
    "effective_links",
    "from_elements",
    "linkset",
    "looks_compressed",
    "normalise_link_type",
    "parse_path",
    "parse_weighted",
    "validate",
]
