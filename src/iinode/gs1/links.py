"""Links of a GS1 key: the model, how a request picks one, and the RFC 9264 linkset.

A link has a link type (a term of the GS1 Web vocabulary, ``gs1:pip``, or any
absolute URI of another vocabulary), a target, a human-readable title and
optional language(s), media type and context.  Every key with links has exactly
one default link.  :func:`choose` applies the GS1-Conformant Resolver rules to
the links of one key and its ancestors (lot and serial inherit from the GTIN).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from iinode.gs1.ai import DigitalLinkError

GS1_VOC = "https://gs1.org/voc/"
#: Other spellings of the GS1 vocabulary namespace taken on input.
_GS1_NAMESPACES = (
    "https://gs1.org/voc/",
    "http://gs1.org/voc/",
    "https://www.gs1.org/voc/",
    "https://ref.gs1.org/voc/",
)
#: Link types of the GS1 Web vocabulary (https://gs1.org/voc/?show=linktypes).
_LINK_TYPE_NAMES = """activityIdeas allergenInfo appDownload askAQuestion brandHomepageClinical
    brandHomepagePatient careersInfo certificationInfo consumerHandlingStorageInfo
    defaultLink defaultLinkMulti electronicPatientInformationLeaflet eventsInfo faqs
    handledBy homepage hasRetailers ingredientsInfo instructions jws leaveReview
    locationInfo logisticsInfo loyaltyProgram masterData menuInfo nutritionalInfo
    paymentLink pip productSustainabilityInfo promotion purchaseSuppliesOrAccessories
    quickStartGuide recallStatus recipeInfo registerProduct registryEntry relatedImage
    relatedVideo review safetyInfo scheduleTime serviceInfo smartLabel smpc socialMedia
    statisticInfo subscribe support sustainabilityInfo traceability tutorial
    userAgreement verificationService whatsInTheBox epcis epil"""
GS1_LINK_TYPES = frozenset(_LINK_TYPE_NAMES.split())
DEFAULT_LINK = "gs1:defaultLink"
DEFAULT_LINK_MULTI = "gs1:defaultLinkMulti"
LINKSET_MEDIA_TYPE = "application/linkset+json"
#: The JSON-LD context GS1 publishes for linksets (GS1-Conformant Resolver artefacts).
LINKSET_CONTEXT = "https://ref.gs1.org/standards/resolver/linkset-context"
#: A language, or a language and a region (``en``, ``de-CH``), as GS1's linkset schema has it.
_LANGUAGE = re.compile(r"^[A-Za-z]{2}(-[A-Za-z0-9]{2})?$")
_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_CONTEXT = re.compile(r"^[\w.:-]{1,64}$")


def normalise_link_type(text: str) -> str:
    """``gs1:pip`` for any spelling of a GS1 term; other absolute URIs unchanged."""
    text = text.strip()
    term = None
    if text.startswith("gs1:"):
        term = text[4:]
    else:
        for ns in _GS1_NAMESPACES:
            if text.startswith(ns):
                term = text[len(ns) :]
                break
    if term is not None:
        if term not in GS1_LINK_TYPES:
            raise DigitalLinkError(f"{text!r} is not a link type of the GS1 Web vocabulary")
        return f"gs1:{term}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DigitalLinkError(f"link type {text!r} is neither gs1:<term> nor an absolute URI")
    return text


def link_type_uri(link_type: str) -> str:
    """The relation type as written in a linkset: a full URI."""
    return GS1_VOC + link_type[4:] if link_type.startswith("gs1:") else link_type


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a GS1 key, stored as a ``GS1_LINK`` value of the key's record."""

    link_type: str
    href: str
    title: str
    hreflang: tuple[str, ...] = ()
    media_type: str | None = None
    context: tuple[str, ...] = ()
    default: bool = False
    #: Pass the request's query string on to the target (the standard's default).
    forward_query: bool = True
    index: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "link_type", normalise_link_type(self.link_type))
        if self.link_type in (DEFAULT_LINK,):
            raise DigitalLinkError("gs1:defaultLink is set with default=true on a link")
        target = urlsplit(self.href)
        if target.scheme not in ("http", "https") or not target.netloc:
            raise DigitalLinkError(f"href {self.href!r} is not an absolute http(s) URL")
        if not self.title.strip():
            raise DigitalLinkError("a link needs a human-readable title")
        for lang in self.hreflang:
            if not _LANGUAGE.match(lang):
                raise DigitalLinkError(f"hreflang {lang!r} is not a language tag")
        if self.media_type is not None and not _MEDIA_TYPE.match(self.media_type):
            raise DigitalLinkError(f"type {self.media_type!r} is not a media type")
        for c in self.context:
            if not _CONTEXT.match(c):
                raise DigitalLinkError(f"context {c!r} must be 1-64 letters, digits, . : - _")

    # -- stored form -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"linkType": self.link_type, "href": self.href, "title": self.title}
        if self.hreflang:
            out["hreflang"] = list(self.hreflang)
        if self.media_type:
            out["type"] = self.media_type
        if self.context:
            out["context"] = list(self.context)
        out["default"] = self.default
        if not self.forward_query:
            out["fwqs"] = False
        if self.index is not None:
            out["index"] = self.index
        return out

    @classmethod
    def from_json(cls, obj: Any, index: int | None = None) -> Link:
        if not isinstance(obj, dict):
            raise DigitalLinkError("a link is a JSON object")
        unknown = set(obj) - {
            "linkType", "href", "title", "hreflang", "type", "context", "default", "fwqs", "index"
        }  # fmt: skip
        if unknown:
            raise DigitalLinkError(f"unknown link field(s): {', '.join(sorted(unknown))}")

        def text(name: str, required: bool = True) -> str | None:
            value = obj.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise DigitalLinkError(f"link field {name!r} must be text")
            return value

        def texts(name: str) -> tuple[str, ...]:
            value = obj.get(name, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DigitalLinkError(f"link field {name!r} must be a list of text")
            return tuple(value)

        default = obj.get("default", False)
        fwqs = obj.get("fwqs", True)
        if not isinstance(default, bool) or not isinstance(fwqs, bool):
            raise DigitalLinkError("link fields 'default' and 'fwqs' are true or false")
        return cls(
            link_type=text("linkType") or "",
            href=text("href") or "",
            title=text("title") or "",
            hreflang=texts("hreflang"),
            media_type=text("type", required=False),
            context=texts("context"),
            default=default,
            forward_query=fwqs,
            index=index,
        )

    def to_value_text(self) -> str:
        body = self.to_json()
        body.pop("index", None)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_value_text(cls, text: str, index: int | None = None) -> Link:
        try:
            obj = json.loads(text)
        except ValueError:
            raise DigitalLinkError("a stored GS1 link is not JSON") from None
        return cls.from_json(obj, index)

    # -- linkset -----------------------------------------------------------------
    def target_object(self) -> dict[str, Any]:
        """The RFC 9264 target object (``href``, ``title``, ``type``, ``hreflang``)."""
        out: dict[str, Any] = {"href": self.href, "title": self.title}
        if self.media_type:
            out["type"] = self.media_type
        if self.hreflang:
            out["hreflang"] = list(self.hreflang)
        if self.context:
            out["context"] = list(self.context)
        return out


def check_one_default(links: Sequence[Link]) -> list[Link]:
    """The links of one key with exactly one default: the first when none is marked."""
    if not links:
        return []
    defaults = [i for i, link in enumerate(links) if link.default]
    keep = defaults[-1] if defaults else 0
    return [replace(link, default=(i == keep)) for i, link in enumerate(links)]


# -- content negotiation ---------------------------------------------------------------
def parse_weighted(header: str | None) -> list[str]:
    """Items of an Accept or Accept-Language header by descending q (q=0 dropped)."""
    if not header:
        return []
    items = []
    for n, part in enumerate(header.split(",")):
        name, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if name and q > 0:
            items.append((-q, n, name.lower()))
    return [name for _, _, name in sorted(items)]


def _language_match(wanted: str, link: Link) -> bool:
    for lang in link.hreflang:
        lang = lang.lower()
        if lang == wanted or lang.split("-")[0] == wanted.split("-")[0]:
            return True
    return False


def _narrow(links: list[Link], keep: Iterable[bool]) -> list[Link]:
    """The links ``keep`` selects, or all of them when it selects none."""
    kept = [link for link, k in zip(links, keep, strict=True) if k]
    return kept or links


@dataclass(frozen=True, slots=True)
class Request:
    """What of an HTTP request can pick a link."""

    link_type: str | None = None
    languages: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome: one link to redirect to, or several the request did not tell apart."""

    links: tuple[Link, ...]

    @property
    def single(self) -> Link | None:
        return self.links[0] if len(self.links) == 1 else None


def effective_links(levels: Sequence[Sequence[Link]]) -> tuple[list[Link], Link | None]:
    """Links of a key with inheritance: ``levels`` most specific first.

    A link type defined at a more specific level hides the same type above it; the
    default link is the most specific level's.
    """
    seen: set[str] = set()
    out: list[Link] = []
    default = None
    for level in levels:
        types_here = set()
        for link in level:
            if default is None and link.default:
                default = link
            if link.link_type not in seen:
                out.append(link)
                types_here.add(link.link_type)
        seen |= types_here
    return out, default


def choose(levels: Sequence[Sequence[Link]], request: Request) -> Choice | None:
    """The link(s) answering ``request``; ``None`` when the key has no link at all."""
    links, default = effective_links(levels)
    if not links:
        return None
    wanted = request.link_type
    if wanted is None:
        candidates = [link for link in links if link.link_type == DEFAULT_LINK_MULTI]
        if not candidates:
            return Choice((default,) if default is not None else (links[0],))
    else:
        candidates = [link for link in links if link.link_type == wanted]
        if not candidates:  # not available: the default link
            return Choice((default,) if default is not None else (links[0],))
    if len(candidates) == 1:
        return Choice((candidates[0],))
    informed = False
    if request.context is not None:
        hits = [request.context in link.context for link in candidates]
        informed |= any(hits)
        candidates = _narrow(candidates, hits)
    for lang in request.languages:
        if lang == "*":
            continue
        hits = [_language_match(lang, link) for link in candidates]
        if any(hits):
            informed = True
            candidates = _narrow(candidates, hits)
            break
    media = [m for m in request.media_types if "*" not in m]
    for m in media:
        hits = [link.media_type == m for link in candidates]
        if any(hits):
            informed = True
            candidates = _narrow(candidates, hits)
            break
    if len(candidates) > 1 and wanted is None and default is not None and not informed:
        return Choice((default,))
    return Choice(tuple(candidates))


def linkset(
    anchors: Sequence[tuple[str, str, Sequence[Link]]],
    extra: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """RFC 9264 JSON as GS1's linkset schema wants it: one context object per level
    that has links, each with ``anchor`` and ``itemDescription``.

    ``anchors`` are (anchor URI, item description, links), most specific first;
    ``extra`` adds, per anchor, one target object per relation (e.g. ``describedby``
    to the identifier record; a target needs ``href`` and ``title``).
    """
    extra = extra or {}
    contexts: list[dict[str, Any]] = []
    for anchor, description, links in anchors:
        more = extra.get(anchor, {})
        if not links and not more:
            continue
        obj: dict[str, Any] = {"anchor": anchor, "itemDescription": description}
        for link in links:
            obj.setdefault(link_type_uri(link.link_type), []).append(link.target_object())
            if link.default and link_type_uri(DEFAULT_LINK) not in obj:  # as effective_links
                obj[link_type_uri(DEFAULT_LINK)] = [{"href": link.href, "title": link.title}]
        for rel, target in more.items():
            obj[rel] = [target]
        contexts.append(obj)
    return {"linkset": contexts}
