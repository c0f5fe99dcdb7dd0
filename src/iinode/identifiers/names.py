"""Handle names: ``prefix/suffix`` with dotted hierarchical prefixes.

Normal form: the prefix is case-insensitive and kept upper-case (``0.na`` and
``0.NA`` are the same naming authority); the suffix is case-sensitive and kept as
given.  A prefix's own record lives at its naming-authority handle
``0.NA/<prefix>``, whose suffix is itself a prefix and is normalised like one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from iinode.errors import InvalidHandle

#: Longest handle accepted, in UTF-8 bytes.
MAX_HANDLE_BYTES = 1024
#: Deepest prefix accepted (``88.118.8`` has depth 3).
MAX_PREFIX_DEPTH = 16

NA_PREFIX = "0.NA"
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True, order=True)
class Prefix:
    """A validated, normalised prefix such as ``88.118.8``."""

    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", normalise_prefix(self.text))

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.text.split("."))

    @property
    def depth(self) -> int:
        return self.text.count(".") + 1

    @property
    def parent(self) -> Prefix | None:
        """``88.118`` for ``88.118.8``; ``None`` for a root prefix."""
        head, dot, _ = self.text.rpartition(".")
        return Prefix(head) if dot else None

    def ancestors(self) -> tuple[Prefix, ...]:
        """This prefix and every ancestor, longest first."""
        out = [self]
        cur = self.parent
        while cur is not None:
            out.append(cur)
            cur = cur.parent
        return tuple(out)

    def is_within(self, other: Prefix) -> bool:
        """True if this prefix equals ``other`` or is delegated below it."""
        return self.text == other.text or self.text.startswith(other.text + ".")

    @property
    def na_handle(self) -> HandleName:
        """The naming-authority handle ``0.NA/<prefix>``."""
        return HandleName(NA_PREFIX, self.text)

    def handle(self, suffix: str) -> HandleName:
        return HandleName(self.text, suffix)

    def __str__(self) -> str:
        return self.text


def normalise_prefix(text: str) -> str:
    """Validate a prefix and return its normal (upper-case) form."""
    if not isinstance(text, str):
        raise InvalidHandle(f"prefix must be text, not {type(text).__name__}")
    return _normalise_prefix(text)


@functools.lru_cache(maxsize=65536)
def _normalise_prefix(text: str) -> str:
    if not text:
        raise InvalidHandle("prefix is empty")
    if "/" in text:
        raise InvalidHandle(f"prefix {text!r} must not contain '/'")
    segments = text.split(".")
    if len(segments) > MAX_PREFIX_DEPTH:
        raise InvalidHandle(f"prefix {text!r} has more than {MAX_PREFIX_DEPTH} segments")
    for seg in segments:
        if not seg:
            raise InvalidHandle(f"prefix {text!r} has an empty segment")
        if not _SEGMENT.match(seg):
            raise InvalidHandle(
                f"prefix segment {seg!r} may only contain letters, digits, '-' and '_'"
            )
    return text.upper()


@dataclass(frozen=True, slots=True, order=True)
class HandleName:
    """A validated, normalised handle ``prefix/suffix``."""

    prefix_text: str
    suffix: str

    def __post_init__(self) -> None:
        prefix = normalise_prefix(self.prefix_text)
        suffix = self.suffix
        if not isinstance(suffix, str):
            raise InvalidHandle(f"suffix must be text, not {type(suffix).__name__}")
        if not suffix:
            raise InvalidHandle(f"handle {prefix}/ has an empty suffix")
        if _CONTROL.search(suffix):
            raise InvalidHandle(f"suffix {suffix!r} contains a control character")
        if prefix == NA_PREFIX:
            suffix = normalise_prefix(suffix)
        if len(prefix.encode()) + 1 + len(suffix.encode()) > MAX_HANDLE_BYTES:
            raise InvalidHandle(f"handle is longer than {MAX_HANDLE_BYTES} bytes")
        object.__setattr__(self, "prefix_text", prefix)
        object.__setattr__(self, "suffix", suffix)

    @classmethod
    def parse(cls, text: str) -> HandleName:
        """Parse ``prefix/suffix``; raises ``InvalidHandle`` with the reason."""
        if not isinstance(text, str):
            raise InvalidHandle(f"handle must be text, not {type(text).__name__}")
        prefix, slash, suffix = text.partition("/")
        if not slash:
            raise InvalidHandle(f"handle {text!r} has no '/' between prefix and suffix")
        try:
            return cls(prefix, suffix)
        except InvalidHandle as exc:
            raise InvalidHandle(f"invalid handle {text!r}: {exc.message}", handle=text) from None

    @property
    def prefix(self) -> Prefix:
        return Prefix(self.prefix_text)

    @property
    def is_na_handle(self) -> bool:
        """True for ``0.NA/<prefix>`` handles."""
        return self.prefix_text == NA_PREFIX

    @property
    def authority(self) -> Prefix:
        """The prefix whose owner answers for this handle.

        For ``88.118.8/X`` that is ``88.118.8``; for ``0.NA/88.118.8`` it is
        ``88.118.8`` itself, because a prefix's record is kept by the node that
        owns the prefix (and delegations by the parent, see the resolver).
        """
        if self.is_na_handle:
            return Prefix(self.suffix)
        return self.prefix

    def __str__(self) -> str:
        return f"{self.prefix_text}/{self.suffix}"


@dataclass(frozen=True, slots=True)
class IndexedHandle:
    """An ``index:handle`` reference such as ``300:0.NA/88.118.8``."""

    index: int
    handle: HandleName

    @classmethod
    def parse(cls, text: str) -> IndexedHandle:
        head, colon, rest = text.partition(":")
        # isdecimal() alone admits other scripts' digits ("٣"); int() would then
        # read them, and isdigit() admits "³", which int() refuses.
        if not colon or not (head.isascii() and head.isdecimal()):
            raise InvalidHandle(f"{text!r} is not of the form index:prefix/suffix")
        index = int(head)
        if not 0 < index < 2**31:
            raise InvalidHandle(f"index {index} is out of range 1..2147483647")
        return cls(index, HandleName.parse(rest))

    def __str__(self) -> str:
        return f"{self.index}:{self.handle}"
