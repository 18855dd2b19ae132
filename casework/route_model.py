"""The routing classifier and its file: logistic regression over sentence embeddings (and,
optionally, char n-gram TF-IDF), trained on routing examples, stored with a stamp of them.

The settings come from routing.json beside this file, written by `bench/routing.py --write`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

SETTINGS_FILE = Path(__file__).resolve().parent / "routing.json"
MODEL_FILE = "model.joblib"


@dataclass(frozen=True)
class Settings:
    threshold: float = 0.45        # below this group confidence → the dispatcher
    features: str = "use"          # "use", "tfidf" or "combined"
    use_c: float = 20.0            # inverse regularisation of the LR on embeddings
    tfidf_c: float = 20.0
    tfidf_weight: float = 0.3      # share of the TF-IDF probabilities in "combined"
    embedder: str = "use"
    keyword_boost: float = 0.3     # added to the probability of a matching keyword rule's class
    check_every: float = 3.0       # seconds between looks for a newer model and directory
    # Routing from the directory alone (no trained model yet): DirectoryMatcher's settings.
    lexical_weight: float = 0.3    # weight of the category name's bigrams found in the message
    temperature: float = 0.05      # softmax temperature turning match scores into probabilities
    zero_shot_threshold: float = 0.3   # below this group confidence → the dispatcher
    directory_weight: float = 0.5  # the matcher's share once a model is trained (0: the model alone)
    # What each category covers, in citizens' words (category name → text), for the matcher: the
    # categories file has no description column yet; a name not in the directory is ignored.
    category_descriptions: dict = field(default_factory=dict, hash=False, compare=False)


def load_settings(path: Path = SETTINGS_FILE) -> Settings:
    data = json.loads(path.read_text()) if path.exists() else {}
    known = Settings.__dataclass_fields__
    return Settings(**{k: v for k, v in data.items() if k in known})


# The classifier ------------------------------------------------------------------------------

def tfidf_pipeline(c: float, min_df: int = 2):
    """Char 1–2-gram TF-IDF (sublinear, seen in at least 2 texts when there are enough) and
    balanced logistic regression: measured better than 1–3-grams unbalanced (docs/routing.md)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=min_df),
                         LogisticRegression(C=c, class_weight="balanced", max_iter=3000))


class Classifier:
    """Logistic regression (balanced) on sentence embeddings and/or char 1–2-gram TF-IDF, probabilities fused."""

    def __init__(self, settings: Settings) -> None:
        self.features = settings.features
        self.settings = settings
        self.classes: list[str] = []
        self._use = self._tfidf = None

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None) -> "Classifier":
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        self.classes = sorted(set(labels))
        # One BLAS thread: these fits are small, and more threads only fight the embedder's.
        # Many categories with few examples each are normal here, not a regression problem.
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The number of unique classes is greater")
            if self.features in ("use", "combined"):
                self._use = LogisticRegression(C=self.settings.use_c, class_weight="balanced",
                                               max_iter=3000).fit(vectors, labels)
            if self.features in ("tfidf", "combined"):
                self._tfidf = tfidf_pipeline(self.settings.tfidf_c, min_df=2 if len(texts) >= 50 else 1).fit(texts, labels)
        return self

    def proba(self, texts: list[str], vectors: np.ndarray | None) -> np.ndarray:
        """Rows: texts; columns: `self.classes`."""
        parts = []
        if self._use is not None:
            parts.append((1 - self.settings.tfidf_weight if self._tfidf is not None else 1.0,
                          self._use.predict_proba(vectors)))
        if self._tfidf is not None:
            parts.append((self.settings.tfidf_weight if self._use is not None else 1.0,
                          self._tfidf.predict_proba(texts)))
        return sum(w * p for w, p in parts)

    @property
    def needs_vectors(self) -> bool:
        return self.features in ("use", "combined")


def cross_validate(texts: list[str], labels: list[str], vectors: np.ndarray | None,
                   settings: Settings, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, list[str]] | None:
    """Out-of-fold probabilities (and the class order); None when a class has fewer than 2 examples."""
    from sklearn.model_selection import StratifiedKFold

    labels_arr = np.array(labels)
    classes = sorted(set(labels))
    smallest = min(int((labels_arr == c).sum()) for c in classes) if classes else 0
    folds = min(folds, smallest)
    if folds < 2 or len(classes) < 2:
        return None
    out = np.zeros((len(texts), len(classes)))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, labels_arr):
        model = Classifier(settings).fit([texts[i] for i in train], list(labels_arr[train]),
                                         None if vectors is None else vectors[train])
        p = model.proba([texts[i] for i in test], None if vectors is None else vectors[test])
        out[np.ix_(test, [classes.index(c) for c in model.classes])] = p
    return out, classes


def macro_f1(labels: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(labels, predicted, average="macro"))


# The model on disk ---------------------------------------------------------------------------

@dataclass
class Model:
    classifier: Classifier          # over the example labels (e.g. 二级分类)
    stamp: str                      # of the examples it was trained on
    embedder: str | None            # the embedding backend it needs, None for TF-IDF alone
    trained_at: str
    counts: dict[str, int]
    cv_macro_f1: float | None = None
    groups: Classifier | None = None    # over their first-level classes, when labels are deeper
    cv_group_macro_f1: float | None = None


def examples_stamp(rows: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for text, category in sorted(rows):
        digest.update(f"{category}\t{text}\n".encode())
    return f"{len(rows)}:{digest.hexdigest()[:16]}"


def save_model(model: Model, directory: Path) -> Path:
    """Written beside and renamed into place, so a reader never sees half a file."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / MODEL_FILE
    tmp = directory / f".{MODEL_FILE}.{os.getpid()}.tmp"
    joblib.dump(model, tmp)
    os.replace(tmp, target)
    return target


def load_model(directory: Path) -> Model | None:
    import joblib

    path = directory / MODEL_FILE
    return joblib.load(path) if path.exists() else None


def _cv_f1(texts, labels, vectors, settings) -> float | None:
    """Cross-validated macro-F1 over the classes with at least 2 examples (a class with one
    cannot be both trained on and tested); None when fewer than 2 such classes."""
    keep = [i for i, c in enumerate(labels) if labels.count(c) >= 2]
    oof = cross_validate([texts[i] for i in keep], [labels[i] for i in keep],
                         None if vectors is None else vectors[keep], settings)
    if oof is None:
        return None
    proba, classes = oof
    return macro_f1([labels[i] for i in keep], [classes[i] for i in proba.argmax(1)])


def fit_model(rows: list[tuple[str, str]], embed: Callable | None, settings: Settings,
              cv: bool = True, group_of: Callable[[str], str] = lambda c: c) -> Model:
    """Train on (text, category) rows; with `cv`, also the 5-fold cross-validated macro-F1.

    When the labels lie below the first level of the category tree (`group_of`), a second
    classifier learns their first-level classes: its probability is the confidence the
    dispatcher threshold applies to (calibrated on first-level classes), spread over fewer,
    larger classes.
    """
    texts = [t for t, _ in rows]
    labels = [c for _, c in rows]
    if len(set(labels)) < 2:
        raise ValueError("routing needs examples of at least two categories")
    vectors = embed(texts) if settings.features != "tfidf" else None
    groups = [group_of(c) for c in labels]
    deeper = groups != labels and len(set(groups)) >= 2
    counts = {c: labels.count(c) for c in sorted(set(labels))}
    return Model(Classifier(settings).fit(texts, labels, vectors), examples_stamp(rows),
                 settings.embedder if settings.features != "tfidf" else None,
                 datetime.now(timezone.utc).isoformat(timespec="seconds"), counts,
                 _cv_f1(texts, labels, vectors, settings) if cv else None,
                 Classifier(settings).fit(texts, groups, vectors) if deeper else None,
                 _cv_f1(texts, groups, vectors, settings) if cv and deeper else None)


# Routing from the directory alone ------------------------------------------------------------

def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def category_texts(directory, descriptions: dict[str, str] | None = None,
                   with_units: bool = True) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the directory says of each category below the first level, for zero-shot routing:
    its text (its parents' names, its name, its children's names, its description, the units
    naming it, its keywords) and its names (its own and its keywords), by category name."""
    nodes = set(directory.parents) | set(directory.parents.values()) | {c for u in directory.units for c in u.categories}
    children: dict[str, list[str]] = {}
    for child, parent in directory.parents.items():
        children.setdefault(parent, []).append(child)
    named = {c for u in directory.units if not u.is_dispatcher for c in u.categories}
    # Leaves and the categories a unit names: an inner category no unit names (噪声污染)
    # would route to no unit, its leaves say more.
    candidates = {n for n in nodes if n in directory.parents and (n in named or n not in children)}
    texts, names = {}, {}
    for node in sorted(candidates if directory.parents else nodes):
        words = [" ".join(reversed(directory.ancestors(node)))]
        if children.get(node):
            words.append("、".join(sorted(children[node])))
        described = directory.descriptions.get(node) or (descriptions or {}).get(node)
        if described:
            words.append(described)
        keys = [k for k, c in directory.keywords if c == node]
        if with_units:
            words += [u.name for u in directory.units if node in u.categories and not u.regions
                      and not u.is_dispatcher]
        texts[node] = "；".join(words + keys)
        names[node] = [node] + keys
    return texts, names


class DirectoryMatcher:
    """Zero-shot routing: a message scored against each category's own words in the directory
    (its name with its parents' and children's names, the units handling it, its keywords and an
    optional description), by sentence-embedding similarity plus the share of the category
    name's character bigrams found in the message. Example messages, when there are some, are
    further prototypes of their category: a category scores its best-matching prototype.

    Scores become probabilities by a softmax at `temperature` (calibrated on the demo examples,
    bench/route_eval.py), so the dispatcher threshold applies as to the trained classifier.
    """

    def __init__(self, texts: dict[str, str], names: dict[str, list[str]], passages: Callable,
                 lexical_weight: float = 0.3, temperature: float = 0.05) -> None:
        self.classes = sorted(texts)
        self.lexical_weight, self.temperature = lexical_weight, temperature
        self._names = [[_bigrams(n) for n in names.get(c, [c]) if len(n) >= 2] for c in self.classes]
        self._prototypes = passages([texts[c] for c in self.classes])
        self._owner = np.arange(len(self.classes))

    def add_examples(self, texts: list[str], labels: list[str], vectors: np.ndarray) -> "DirectoryMatcher":
        keep = [i for i, c in enumerate(labels) if c in self.classes]
        if keep:
            self._prototypes = np.vstack([self._prototypes, vectors[keep]])
            self._owner = np.concatenate([self._owner, [self.classes.index(labels[i]) for i in keep]])
        return self

    def scores(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        sims = vectors @ self._prototypes.T
        out = np.full((len(texts), len(self.classes)), -1.0)
        np.maximum.at(out.T, self._owner, sims.T)
        for row, text in enumerate(texts):
            grams = _bigrams(text)
            for col, names in enumerate(self._names):
                if names:
                    out[row, col] += self.lexical_weight * max(len(n & grams) / len(n) for n in names)
        return out

    def proba(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        s = self.scores(texts, vectors) / self.temperature
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
