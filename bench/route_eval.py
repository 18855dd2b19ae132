"""Routing measured as issue 5 asks: the trained classifier on real messages, and routing from
the directory alone on messages the project wrote.

    .venv/bin/python bench/route_eval.py            # all tables (docs/routing.md)
    .venv/bin/python bench/route_eval.py --quick    # fewer shuffles and seeds, no e5 on Teddy Cup
    .venv/bin/python bench/route_eval.py --write    # also store the chosen settings in casework/routing.json

1. Teddy Cup 2020 (../shared/data, read there, never copied; skipped when absent): 245 real
   messages, 7 first-level classes. 5-fold stratified cross-validation (mean ± sd over shuffles)
   of TF-IDF, sentence-embedding and fused classifiers, per-class F1 of the best, and learning
   curves at 10 / 20 / all examples per class.
2. The demo directory alone (casework/demo): unit accuracy on bench/data/directory_eval.csv
   (124 complaint messages written for this bench, labelled with the unit), with no example
   messages, then with 1, 3, 5 examples per category from casework/demo/routing_examples.csv.
   The matcher's settings are chosen on those demo examples, never on the evaluation set.
3. Latency of `Router.classify` per message.

Embeddings are cached in /tmp/govchat-route-eval (keyed by model and text), so a second run
takes seconds.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from casework.directory import split_list  # noqa: E402
from casework.route_model import (SETTINGS_FILE, DirectoryMatcher, category_texts, fit_model,  # noqa: E402
                                  load_settings, tfidf_pipeline)
from casework.routing import Directory, Router, UnitInfo, detect_place  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "teddycup2020" / "labelled_messages_dev.csv"
DEMO = ROOT / "casework" / "demo"
EVAL = ROOT / "bench" / "data" / "directory_eval.csv"
CACHE = Path("/tmp/govchat-route-eval")
DISPATCH_SHARE = 0.10


# Embeddings, cached ---------------------------------------------------------------------------

_embedders: dict = {}


def embed(name: str, texts: list[str], kind: str = "queries") -> np.ndarray:
    digest = hashlib.sha256("\x00".join([name, kind, *texts]).encode()).hexdigest()[:20]
    path = CACHE / f"{name}-{kind}-{digest}.npy"
    if path.exists():
        return np.load(path)
    if name not in _embedders:
        from knowledge_base.embeddings import make_embedder
        _embedders[name] = make_embedder(name)
    vectors = getattr(_embedders[name], kind)(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def embedder(name: str):
    if name not in _embedders:
        from knowledge_base.embeddings import make_embedder
        _embedders[name] = make_embedder(name)
    return _embedders[name]


# 1. Teddy Cup ---------------------------------------------------------------------------------

def teddy_texts(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [f"{r['留言主题'].strip()}\n{r['留言详情'].strip()}" for r in rows], [r["一级分类"].strip() for r in rows]


def _lr(c: float):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)


class Fused:
    """Probabilities of LR on embeddings and of TF-IDF + LR, averaged with weight `w` on TF-IDF
    (w=None: chosen by an inner 3-fold CV on the training part)."""

    def __init__(self, w: float | None = 0.5, use_tfidf: bool = True, use_vec: bool = True, c: float = 20.0):
        self.w, self.use_tfidf, self.use_vec, self.c = w, use_tfidf, use_vec, c

    def parts(self, texts, vectors, y):
        tf = tfidf_pipeline(10.0).fit(texts, y) if self.use_tfidf else None
        lr = _lr(self.c).fit(vectors, y) if self.use_vec else None
        return tf, lr

    def fit(self, texts, vectors, y):
        y = np.asarray(y)
        if self.w is None and self.use_tfidf and self.use_vec:
            self.w = self._choose(texts, vectors, y)
        self.tf, self.lr = self.parts(texts, vectors, y)
        self.classes_ = (self.tf if self.tf is not None else self.lr).classes_
        return self

    def proba(self, texts, vectors):
        if self.tf is None:
            return self.lr.predict_proba(vectors)
        if self.lr is None:
            return self.tf.predict_proba(texts)
        return self.w * self.tf.predict_proba(texts) + (1 - self.w) * self.lr.predict_proba(vectors)

    def _choose(self, texts, vectors, y) -> float:
        from sklearn.model_selection import StratifiedKFold
        pt, pv = np.zeros((len(y), len(set(y)))), np.zeros((len(y), len(set(y))))
        classes = sorted(set(y))
        for tr, te in StratifiedKFold(3, shuffle=True, random_state=0).split(texts, y):
            tf, lr = self.parts([texts[i] for i in tr], vectors[tr], y[tr])
            cols = [classes.index(c) for c in tf.classes_]
            pt[np.ix_(te, cols)] = tf.predict_proba([texts[i] for i in te])
            pv[np.ix_(te, cols)] = lr.predict_proba(vectors[te])
        grid = np.linspace(0, 1, 11)
        scores = [f1(y, np.array(classes)[(w * pt + (1 - w) * pv).argmax(1)]) for w in grid]
        return float(grid[int(np.argmax(scores))])


def f1(y, pred, average="macro"):
    from sklearn.metrics import f1_score
    return f1_score(y, pred, average=average, labels=sorted(set(y)), zero_division=0)


def cv(texts, y, vectors, make, seeds) -> tuple[list[float], list[float], np.ndarray]:
    """Macro-F1 and accuracy per shuffle of 5-fold CV; the per-class F1 of the first shuffle."""
    from sklearn.model_selection import StratifiedKFold
    y = np.asarray(y)
    f1s, accs, per_class = [], [], None
    for seed in seeds:
        pred = np.empty(len(y), dtype=object)
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(texts, y):
            m = make().fit([texts[i] for i in tr], vectors[tr], y[tr])
            pred[te] = m.classes_[m.proba([texts[i] for i in te], vectors[te]).argmax(1)]
        f1s.append(f1(y, list(pred)))
        accs.append(float(np.mean(pred == y)))
        if per_class is None:
            per_class = f1(y, list(pred), average=None)
    return f1s, accs, per_class


class Centroids:
    def fit(self, texts, vectors, y):
        y = np.asarray(y)
        self.classes_ = np.array(sorted(set(y)))
        self.c = np.stack([vectors[y == c].mean(0) for c in self.classes_])
        return self

    def proba(self, texts, vectors):
        return vectors @ self.c.T


def learning_curve(texts, y, vectors, make, k: int, seeds) -> list[float]:
    """k training examples per class (stratified sample), tested on all the others."""
    y = np.asarray(y)
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), min(k, int((y == c).sum()) - 1), replace=False)
                                for c in sorted(set(y))])
        test = np.setdiff1d(np.arange(len(y)), train)
        m = make().fit([texts[i] for i in train], vectors[train], y[train])
        out.append(f1(y[test], m.classes_[m.proba([texts[i] for i in test], vectors[test]).argmax(1)]))
    return out


def ms(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def teddy_cup(args) -> dict:
    texts, y = teddy_texts(args.data)
    subjects = [t.split("\n", 1)[0] for t in texts]
    print(f"## Teddy Cup: {len(texts)} messages, {len(set(y))} classes\n")
    vec = {"use": embed("use", texts)}
    vec["use: subject ⊕ text"] = np.hstack([embed("use", subjects), vec["use"]])
    seeds = (0,) if args.quick else (0, 1, 2)
    configs = {
        "char 1-2-gram TF-IDF + LR (sublinear, min_df 2, balanced, C=10)": ("use", lambda: Fused(use_vec=False, c=10)),
        "USE + LR (C=20, no class weights: before)": ("use", lambda: _Unbalanced()),
        "USE + LR (balanced, C=5)": ("use", lambda: Fused(use_tfidf=False, c=5)),
        "USE + LR (balanced, C=20)": ("use", lambda: Fused(use_tfidf=False)),
        "USE + TF-IDF, weight by inner 3-fold CV": ("use", lambda: Fused(None)),
        "USE subject ⊕ text + LR (balanced, C=20)": ("use: subject ⊕ text", lambda: Fused(use_tfidf=False)),
        "USE subject ⊕ text + TF-IDF, weight by inner 3-fold CV": ("use: subject ⊕ text", lambda: Fused(None)),
    }
    if not args.quick:      # e5 is slow to embed here (25 min for 5 passes under load): cached in /tmp
        vec["e5"] = embed("e5", texts)
        vec["e5: first 256 characters"] = embed("e5", [t[:256] for t in texts])
        vec["USE ⊕ e5: subject ⊕ text"] = np.hstack([vec["use: subject ⊕ text"], embed("e5", subjects), vec["e5"]])
        configs["e5 + LR (balanced, C=20)"] = ("e5", lambda: Fused(use_tfidf=False))
        configs["e5, first 256 characters + LR (balanced, C=20)"] = ("e5: first 256 characters",
                                                                     lambda: Fused(use_tfidf=False))
        configs["USE ⊕ e5, subject ⊕ text + LR (balanced, C=20)"] = ("USE ⊕ e5: subject ⊕ text",
                                                                     lambda: Fused(use_tfidf=False))
        configs["USE ⊕ e5, subject ⊕ text + TF-IDF, weight by inner CV"] = ("USE ⊕ e5: subject ⊕ text",
                                                                            lambda: Fused(None))
    print("| classifier (5-fold CV) | macro-F1 (mean ± sd over shuffles) | accuracy |\n|---|---|---|")
    results = {}
    for name, (space, make) in configs.items():
        # The nested fusions fit TF-IDF four times per fold: one shuffle only.
        f1s, accs, per_class = cv(texts, y, vec[space], make, seeds[:1] if "inner" in name else seeds)
        results[name] = (np.mean(f1s), per_class, space, make)
        print(f"| {name} | {ms(f1s)} | {np.mean(accs):.3f} |", flush=True)
    best = max(results, key=lambda n: results[n][0])
    print(f"\nper-class F1 of the best ({best}, shuffle 0):\n")
    classes = sorted(set(y))
    print("| class | messages | F1 |\n|---|---|---|")
    for c, v in zip(classes, results[best][1]):
        print(f"| {c} | {y.count(c)} | {v:.3f} |")
    print("\nlearning curve (macro-F1 on the messages not trained on, mean ± sd over seeds):\n")
    curve_seeds = range(3 if args.quick else 5)
    space, make = results[best][2], results[best][3]
    print(f"| examples per class | centroids (USE) | USE + LR | {best} |\n|---|---|---|---|")
    for k in (10, 20):
        row = [learning_curve(texts, y, vec["use"], Centroids, k, curve_seeds),
               learning_curve(texts, y, vec["use"], lambda: Fused(use_tfidf=False), k, curve_seeds),
               learning_curve(texts, y, vec[space], make, k, curve_seeds)]
        print(f"| {k} | " + " | ".join(ms(r) for r in row) + " |", flush=True)
    print(f"| all (5-fold CV) | {ms(cv(texts, y, vec['use'], Centroids, seeds)[0])} | "
          f"{ms(cv(texts, y, vec['use'], lambda: Fused(use_tfidf=False), seeds)[0])} | {results[best][0]:.3f} |")
    return {"teddy_best": best, "teddy_macro_f1": round(float(results[best][0]), 3)}


class _Unbalanced(Fused):
    """LR on embeddings as it was served before: C=20, no class weights."""

    def __init__(self):
        super().__init__(use_tfidf=False)

    def parts(self, texts, vectors, y):
        from sklearn.linear_model import LogisticRegression
        return None, LogisticRegression(C=20, max_iter=3000).fit(vectors, y)


# 2. The directory alone -------------------------------------------------------------------------

def demo_directory() -> Directory:
    with open(DEMO / "units.csv", encoding="utf-8") as f:
        units = [UnitInfo(r["unit_id"], r["unit_name"], r["parent"] or None, tuple(split_list(r["categories"])),
                          tuple(split_list(r["regions"])), r["unit_id"] == "DISPATCH") for r in csv.DictReader(f)]
    parents = {}
    with open(DEMO / "categories.csv", encoding="utf-8") as f:
        for row in list(csv.reader(f))[1:]:
            for upper, lower in zip(row, row[1:]):
                parents[lower] = upper
    return Directory(units, parents)


def read_csv(path: Path, *columns: str) -> list[tuple[str, ...]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [tuple(r[c] for c in columns) for r in csv.DictReader(f)]


def unit_accuracy(directory: Directory, classes: list[str], proba: np.ndarray, messages: list[str],
                  units: list[str], threshold: float = 0.0) -> tuple[float, float, float]:
    """(accuracy of the guess, share below the threshold, accuracy of the rest)."""
    ok, kept_ok, kept = [], [], []
    for text, row, gold in zip(messages, proba, units):
        groups: dict[str, float] = {}
        for c, q in zip(classes, row):
            groups[directory.group(c)] = groups.get(directory.group(c), 0.0) + q
        category = classes[int(row.argmax())]
        district, street = detect_place(text, directory.districts, directory.streets)
        right = directory.unit_for(category, district, street) == gold
        ok.append(right)
        keep = groups[directory.group(category)] >= threshold
        kept.append(keep)
        if keep:
            kept_ok.append(right)
    return float(np.mean(ok)), 1 - float(np.mean(kept)), float(np.mean(kept_ok)) if kept_ok else 0.0


def directory_alone(args, settings) -> dict:
    d = demo_directory()
    messages, units = zip(*read_csv(EVAL, "message", "unit_id"))
    messages, units = list(messages), list(units)
    examples = read_csv(DEMO / "routing_examples.csv", "message", "category")
    ex_texts, ex_labels = [t for t, _ in examples], [c for _, c in examples]
    ex_units = [d.unit_for(c, *detect_place(t, d.districts, d.streets)) for t, c in examples]
    print(f"\n## The directory alone: {len(messages)} messages, {len(set(units))} units "
          f"(bench/data/directory_eval.csv)\n")
    texts, names = category_texts(d, settings.category_descriptions)
    bare, _ = category_texts(d)
    name = settings.embedder
    q = embed(name, messages)
    qe = embed(name, ex_texts)
    prototypes = embed(name, [texts[c] for c in sorted(texts)], "passages")
    bare_protos = embed(name, [bare[c] for c in sorted(bare)], "passages")

    def matcher(lw, temp=0.05, text_map=texts, protos=prototypes, name_map=names):
        return DirectoryMatcher(text_map, name_map, lambda _: protos, lw, temp)

    # Settings chosen on the demo examples (a dev set), then measured on the evaluation set.
    print("| matcher (no examples) | unit accuracy, demo examples (dev, 110) | unit accuracy, evaluation set |\n"
          "|---|---|---|")
    plain_texts = {c: " ".join(reversed(d.ancestors(c))) for c in texts}
    plain = embed(name, [plain_texts[c] for c in sorted(texts)], "passages")
    rows = [("category names with their parents', embeddings only", matcher(0.0, text_map=plain_texts, protos=plain)),
            ("directory text (+ children, units), embeddings only", matcher(0.0, text_map=bare, protos=bare_protos)),
            ("directory text + name bigrams, weight 0.3", matcher(0.3, text_map=bare, protos=bare_protos)),
            ("directory text + descriptions, embeddings only", matcher(0.0))]
    grid = (0.1, 0.2, 0.3, 0.5, 0.8)
    dev = {lw: unit_accuracy(d, matcher(lw).classes, matcher(lw).proba(ex_texts, qe), ex_texts, ex_units)[0]
           for lw in grid}
    chosen_lw = max(grid, key=lambda lw: (dev[lw], -abs(lw - 0.3)))
    rows += [(f"directory text + descriptions + name bigrams, weight {lw}", matcher(lw)) for lw in grid]
    for label, m in rows:
        print(f"| {label} | {unit_accuracy(d, m.classes, m.proba(ex_texts, qe), ex_texts, ex_units)[0]:.3f} | "
              f"{unit_accuracy(d, m.classes, m.proba(messages, q), messages, units)[0]:.3f} |")
    m = matcher(chosen_lw, settings.temperature)
    # The threshold: at most 10% of the dev messages below it.
    dev_p = m.proba(ex_texts, qe)
    conf = sorted(max(sum(q for c, q in zip(m.classes, row) if d.group(c) == g) for g in {d.group(c) for c in m.classes})
                  for row in dev_p)
    threshold = float(conf[int(DISPATCH_SHARE * len(conf))])
    acc, sent, kept = unit_accuracy(d, m.classes, m.proba(messages, q), messages, units, threshold)
    print(f"\nchosen: name-bigram weight {chosen_lw} (best on the demo examples); threshold {threshold:.3f} "
          f"(10% of the demo examples below it)\n")
    print("| evaluation set | unit accuracy | to dispatcher | accuracy of the rest |\n|---|---|---|---|")
    print(f"| zero-shot matcher | {acc:.3f} | {sent:.1%} | {kept:.3f} |")

    # Adding examples: k per category (all of a category's when it has fewer), 5 draws.
    print("\nunit accuracy as example messages are added (mean ± sd over 5 draws):\n")
    print("| examples per category | examples | matcher + examples as prototypes | LR on the examples alone |"
          " LR + matcher (mean of probabilities) |\n|---|---|---|---|---|")
    labels = np.array(ex_labels)
    curve = {}
    for k in (0, 1, 3, 5):
        res = {"m": [], "lr": [], "fused": []}
        sizes = []
        for seed in range(1 if k == 0 else 5):
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(labels == c), min(k, int((labels == c).sum())),
                                              replace=False) for c in sorted(set(ex_labels))]).astype(int)
            sizes.append(len(pick))
            mk = matcher(chosen_lw, settings.temperature).add_examples([ex_texts[i] for i in pick],
                                                                       list(labels[pick]), qe[pick])
            pm = mk.proba(messages, q)
            res["m"].append(unit_accuracy(d, mk.classes, pm, messages, units)[0])
            if k:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    lr = _lr(20.0).fit(qe[pick], labels[pick])
                pl = np.zeros_like(pm)
                pl[:, [mk.classes.index(c) for c in lr.classes_]] = lr.predict_proba(q)
                res["lr"].append(unit_accuracy(d, mk.classes, pl, messages, units)[0])
                res["fused"].append(unit_accuracy(d, mk.classes, (pl + pm) / 2, messages, units)[0])
        curve[k] = float(np.mean(res["m"]))
        print(f"| {k} | {int(np.mean(sizes))} | {ms(res['m'])} | "
              f"{ms(res['lr']) if res['lr'] else '—'} | {ms(res['fused']) if res['fused'] else '—'} |", flush=True)
    return {"lexical_weight": chosen_lw, "zero_shot_threshold": round(threshold, 3),
            "directory_unit_accuracy": round(acc, 3), "directory_curve": curve}


# 3. Latency -------------------------------------------------------------------------------------

def served(settings) -> None:
    """The served router end to end on the evaluation set: threshold, district, dispatcher."""
    d = demo_directory()
    messages, units = zip(*read_csv(EVAL, "message", "unit_id"))
    emb = embedder(settings.embedder)
    rows = read_csv(DEMO / "routing_examples.csv", "message", "category")
    print("\n| served Router.classify on the evaluation set | unit accuracy | to dispatcher "
          "| accuracy of the rest |\n|---|---|---|---|")
    for label, s, model in (
            ("no examples: directory matcher", settings, False),
            ("110 demo examples: classifier alone", replace(settings, directory_weight=0.0), True),
            (f"110 demo examples: classifier + matcher (weight {settings.directory_weight})", settings, True)):
        router = Router(None, ROOT / "var" / "route-bench", settings=s, embedder_source=lambda: emb, directory=d)
        if model:
            router.model = fit_model(rows, emb.queries, s, cv=False, group_of=d.group)
        routes = [router.classify(m) for m in messages]
        sent = [r.unit_id == d.dispatcher for r in routes]
        ok = [r.unit_id == u for r, u in zip(routes, units)]
        kept = [o for o, x in zip(ok, sent) if not x]
        print(f"| {label} | {np.mean(ok):.3f} | {np.mean(sent):.1%} | {np.mean(kept):.3f} |")


def latency(settings, teddy: list[str] | None) -> None:
    d = demo_directory()
    messages = [m for m, in read_csv(EVAL, "message")]
    emb = embedder(settings.embedder)
    router = Router(None, ROOT / "var" / "route-bench", settings=settings, embedder_source=lambda: emb, directory=d)
    print("\n| Router.classify, one message | messages | mean characters | p50 ms | p99 ms |\n|---|---|---|---|---|")
    runs = [("zero-shot (no examples)", messages)]
    if teddy:
        runs.append(("110 demo examples + matcher, Teddy Cup messages", teddy))
    for label, texts in runs:
        if "demo examples" in label:
            rows = read_csv(DEMO / "routing_examples.csv", "message", "category")
            router.model = fit_model(rows, emb.queries, settings, cv=False, group_of=d.group)
        router.classify(texts[0])
        times = []
        for text in texts:
            t = time.perf_counter()
            router.classify(text)
            times.append((time.perf_counter() - t) * 1000)
        print(f"| {label} | {len(texts)} | {np.mean([len(t) for t in texts]):.0f} | "
              f"{np.percentile(times, 50):.1f} | {np.percentile(times, 99):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--quick", action="store_true", help="one shuffle, 3 seeds, USE only on Teddy Cup")
    parser.add_argument("--write", action="store_true", help="store the chosen settings in casework/routing.json")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)    # small fits; the machine is shared
    warnings.filterwarnings("ignore", category=UserWarning)
    settings = load_settings()
    measured = {}
    teddy = None
    if args.data.exists():
        measured.update(teddy_cup(args))
        teddy = teddy_texts(args.data)[0]
    else:
        print(f"no Teddy Cup data at {args.data}: its tables are skipped", file=sys.stderr)
    measured.update(directory_alone(args, settings))
    settings = replace(settings, lexical_weight=measured["lexical_weight"],
                       zero_shot_threshold=measured["zero_shot_threshold"])
    served(settings)
    latency(settings, teddy)
    if args.write:
        data = json.loads(SETTINGS_FILE.read_text()) if SETTINGS_FILE.exists() else {}
        data.update({k: v for k, v in asdict(settings).items() if k != "check_every"})
        data.setdefault("measured", {}).update(
            {k: v for k, v in measured.items() if k not in ("lexical_weight", "zero_shot_threshold")})
        SETTINGS_FILE.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        print(f"\nwrote {SETTINGS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
