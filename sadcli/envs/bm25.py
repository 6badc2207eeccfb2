"""BM25 search for the text environments (WebShop's product search, HotPotQA's title fallback).

A thin wrapper over the ``bm25s`` library (sparse-matrix BM25): our own tokenizer (lower case, ``\\w+``
words, English stop words removed, Snowball stemming when ``PyStemmer`` is installed) and a stable
ranking — scores descending, ties broken by document index — so that a query always returns the same
list. Lucene's BM25 (``method="lucene"``) with pyserini's defaults ``k1=0.9, b=0.4`` unless told.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sadcli.errors import InputError

_WORD = re.compile(r"\w+", re.U)


def _require():
    try:
        import bm25s
    except ImportError as e:
        raise InputError(f"BM25 search needs the bm25s package ({e})",
                         hint="pip install 'sad-distill[webshop]' (or: pip install bm25s PyStemmer)") from None
    return bm25s


def _stemmer():
    try:
        import Stemmer
    except ImportError:  # pragma: no cover - PyStemmer is in the same extra
        return None
    return Stemmer.Stemmer("english")


class BM25Index:
    """BM25 over ``texts``; :meth:`top` gives ``[(doc index, score)]`` best first, ties by index."""

    def __init__(self, texts: Sequence[str], *, k1: float = 0.9, b: float = 0.4, stem: bool = True,
                 stopwords: bool = True):
        bm25s = _require()
        self._stop = frozenset(bm25s.stopwords.STOPWORDS_EN) if stopwords else frozenset()
        self._stem = _stemmer() if stem else None
        self._cache: dict[str, str] = {}
        self.n = len(texts)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        corpus = [self.tokens(t) or [""] for t in texts]
        self.retriever.index(corpus, show_progress=False)
        self._vocab = self.retriever.vocab_dict

    def tokens(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self._stop]
        if self._stem is None:
            return words
        out = []
        for w in words:
            s = self._cache.get(w)
            if s is None:
                s = self._cache[w] = self._stem.stemWord(w)
            out.append(s)
        return out

    def scores(self, query: str):
        """BM25 score of every document for ``query`` (a numpy array of length ``n``)."""
        import numpy as np

        toks = [t for t in self.tokens(query) if t in self._vocab]
        if not toks or self.n == 0:
            return np.zeros(self.n, dtype="float32")
        return self.retriever.get_scores(toks)

    def top(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` best documents with a positive score, best first; ties broken by document index."""
        import numpy as np

        s = self.scores(query)
        hits = np.flatnonzero(s > 0)
        if hits.size == 0:
            return []
        order = hits[np.lexsort((hits, -s[hits]))][:k]
        return [(int(i), float(s[i])) for i in order]
