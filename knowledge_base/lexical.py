"""BM25 over jieba words and character bigrams, as a sparse matrix for fast scoring."""
from __future__ import annotations

import math

import numpy as np
from scipy import sparse


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.vocab: dict[str, int] = {}
        # One flat array of term ids and one of document ids (typed, not lists of Python ints:
        # at 100k entries those would take gigabytes); duplicates are summed into term counts.
        lengths = np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))
        setdefault = self.vocab.setdefault
        terms = np.fromiter((setdefault(t, len(self.vocab)) for doc in docs for t in doc),
                            dtype=np.int32, count=int(lengths.sum()))
        counts = sparse.coo_matrix(
            (np.ones(len(terms), dtype=np.float32), (terms, np.repeat(np.arange(len(docs), dtype=np.int32), lengths))),
            shape=(len(self.vocab), len(docs))).tocsr()
        counts.sum_duplicates()
        coo = counts.tocoo()
        cols, rows, tf = coo.row, coo.col, coo.data     # term, document, count
        lengths = lengths.astype(np.float32)
        n = max(len(docs), 1)
        df = np.bincount(cols, minlength=len(self.vocab)).astype(np.float32)
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.max_idf = float(math.log(1 + (n + 0.5) / 0.5))
        avgdl = float(lengths.mean()) if len(docs) else 1.0
        norm = k1 * (1 - b + b * lengths[rows] / max(avgdl, 1e-6))
        weights = self.idf[cols] * tf * (k1 + 1) / (tf + norm)
        # Terms × documents, so a query reads only the rows of its own terms.
        self.matrix = sparse.csr_matrix((weights, (cols, rows)), shape=(len(self.vocab), len(docs)),
                                        dtype=np.float32)
        self.size = len(docs)

    def scores(self, query: list[str]) -> np.ndarray:
        """Every document's score divided by the query's total IDF: about 0..1.

        Query words the base has never seen count in the total, so a query that is mostly
        unknown words cannot score high on the few it shares.
        """
        terms = set(query)
        known = [self.vocab[t] for t in terms if t in self.vocab]
        total = sum(float(self.idf[i]) for i in known) + self.max_idf * (len(terms) - len(known))
        if not known or total <= 0:
            return np.zeros(self.size, dtype=np.float32)
        raw = np.asarray(self.matrix[known].sum(axis=0)).ravel()
        return np.minimum(raw / total, 1.0).astype(np.float32)
