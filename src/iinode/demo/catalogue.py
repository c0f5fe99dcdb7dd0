"""The demo's product catalogue: a metadata template every enterprise publishes, and
the product identifiers registered against it.

Each enterprise defines ``<prefix>/template/part/1`` (GB/T 4754 class C3451, bearings
and transmission parts): a full-text bilingual title, a model, a material, a batch, a
unique serial and a restricted unit cost.  Its products ``<prefix>/P00000000``… carry
the URL of their page, the template link and those attributes, so the console's
search finds them by words (``轴承``, ``bearing``) and by attribute values.
"""

from __future__ import annotations

from typing import Any

from iinode.identifiers import HandleName, HandleValue, StringData, UrlData
from iinode.node.templates import Template
from iinode.storage.search import TEMPLATE_LINK_INDEX, TEMPLATE_LINK_TYPE

#: The kinds of part, in turn: (title, model, material).
PARTS = (
    ("深沟球轴承 deep groove ball bearing", "6204-2RS", "GCr15"),
    ("圆锥滚子轴承 tapered roller bearing", "30205", "GCr15"),
    ("斜齿轮 helical gear", "HG-M2-40", "45#"),
    ("传动轴 drive shaft", "DS-1200", "45#"),
    ("电机端盖 motor end cover", "EC-160", "QT500"),
    ("散热片 heat sink", "HS-80", "6061-T6"),
)
MATERIALS = sorted({material for _, _, material in PARTS})


def definition() -> dict[str, Any]:
    """The part template's definition (published)."""
    return {
        "name": "part",
        "version": "1",
        "industry": "C3451",
        "status": "published",
        "description": "bearings and transmission parts",
        "attributes": [
            {"name": "title", "type": "string", "required": True, "fulltext": True},
            {"name": "model", "type": "string", "required": True,
             "constraints": {"pattern": "^[A-Z0-9-]+$", "maxLength": 32}},
            {"name": "material", "type": "enum", "constraints": {"values": MATERIALS}},
            {"name": "batch", "type": "string"},
            {"name": "serial", "type": "string", "required": True, "unique": True},
            {"name": "cost", "type": "number", "access": "restricted"},
        ],
    }  # fmt: skip


def template_handle(prefix: str) -> HandleName:
    return HandleName(prefix, "template/part/1")


def part_template(prefix: str) -> Template:
    return Template.from_json(definition(), prefix=prefix)


def product_values(prefix: str, page: str, n: int) -> list[HandleValue]:
    """Product ``n``'s values: its page, the link, then the attributes at 2000 upward."""
    title, model, material = PARTS[n % len(PARTS)]
    attributes = (
        ("title", f"{title} #{n}"),
        ("model", model),
        ("material", material),
        ("batch", f"B{2026_0000 + n // 500}"),
        ("serial", f"SN-{prefix.replace('.', '')}-{n:08d}"),
        ("cost", f"{12 + (n % 7) * 3.5:.2f}"),
    )
    return [
        HandleValue(1, "URL", UrlData(page)),
        HandleValue(
            TEMPLATE_LINK_INDEX, TEMPLATE_LINK_TYPE, StringData(str(template_handle(prefix)))
        ),
        *(
            HandleValue(2000 + i, name, StringData(text))
            for i, (name, text) in enumerate(attributes)
        ),
    ]


__all__ = [
    "PARTS",
    "definition",
    "part_template",
    "product_values",
    "template_handle",
]
