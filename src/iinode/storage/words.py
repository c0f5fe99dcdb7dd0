"""The words of a text, as full-text search indexes and queries them.

A text is normalised (Unicode NFKC, so full-width Latin letters and digits read
as ASCII ones, then case-folded) and split at everything that is not a letter or a digit.  A run of
letters and digits is one word, except where it is written in a script without
spaces between words (Han, Hiragana, Katakana, Hangul): there each pair of
neighbouring characters is a word (a lone character is one), so ``深沟球轴承``
gives ``深沟 沟球 球轴 轴承`` and a query for ``球轴承`` (``球轴 轴承``) finds it.
This is the bigram scheme of common CJK analysers; it needs no dictionary and
finds any run of two or more characters, at the price of matches where a query's
pairs appear apart.  A query of a single such character finds only values where
the character stands alone.

Indexes take at most :data:`MAX_WORDS` distinct words of a value, each at most
:data:`MAX_WORD_CHARS` characters (longer ones are cut there, in indexing and in
queries alike, so they still match).
"""

from __future__ import annotations

import re
import unicodedata

#: Most distinct words indexed per value, and the longest word kept whole.
MAX_WORDS = 64
MAX_WORD_CHARS = 64

_RUN = re.compile(r"[^\W_]+")
#: Scripts written without spaces: Han (with extensions A and the compatibility
#: block), Hiragana, Katakana, Hangul syllables and Jamo, Bopomofo.
_DENSE = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3100-\u312f\u3131-\u318e\u31a0-\u31bf"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+"
)


def words(text: str, *, limit: int = MAX_WORDS) -> list[str]:
    """The distinct words of ``text``, in order of first appearance (at most ``limit``)."""
    found: dict[str, None] = {}
    for run in _RUN.findall(unicodedata.normalize("NFKC", text).casefold()):
        for word in _split(run):
            found.setdefault(word[:MAX_WORD_CHARS])
            if len(found) >= limit:
                return list(found)
    return list(found)


def _split(run: str) -> list[str]:
    dense = _DENSE.search(run)
    if dense is None:
        return [run]
    out: list[str] = []
    at = 0
    for part in _DENSE.finditer(run):
        if part.start() > at:
            out.append(run[at : part.start()])
        chars = part.group()
        out += [chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)]
        at = part.end()
    if at < len(run):
        out.append(run[at:])
    return out


__all__ = ["MAX_WORDS", "MAX_WORD_CHARS", "words"]
