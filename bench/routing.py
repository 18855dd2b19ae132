"""Routing quality and speed on real messages (Teddy Cup 2020, 7 first-level classes).

    .venv/bin/python bench/routing.py            # print the table (docs/routing.md)
    .venv/bin/python bench/routing.py --write    # also store the chosen features and threshold
                                                 # in casework/routing.json

5-fold stratified cross-validation, macro-F1 and accuracy, for char TF-IDF + LR, USE + LR and
their fusion; then, for the chosen one, the confidence threshold that sends at most 10% of the
messages to the dispatcher, the accuracy on the rest, and the per-message latency of
`Router.classify` (embedding included). The data is read from ../shared/data, never copied.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from casework.route_model import (SETTINGS_FILE, Settings, cross_validate, fit_model,  # noqa: E402
                                  load_settings, macro_f1)
from casework.routing import Directory, Router  # noqa: E402
from knowledge_base.embeddings import make_embedder  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "teddycup2020" / "labelled_messages_dev.csv"
DISPATCH_SHARE = 0.10
# Rules an admin might write (illustrative, written for this bench, not fitted to the data).
KEYWORDS = {"油烟": "环境保护", "噪音": "环境保护", "污染": "环境保护", "拖欠工资": "劳动和社会保障",
            "社保": "劳动和社会保障", "医保": "劳动和社会保障", "物业": "城乡建设", "公交": "交通运输",
            "出租车": "交通运输", "医院": "卫生计生", "幼儿园": "教育文体", "学校": "教育文体"}
MARGIN = 0.02


def load(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [f"{r['留言主题'].strip()}\n{r['留言详情'].strip()}" for r in rows], [r["一级分类"].strip() for r in rows]


def evaluate(texts, labels, vectors, settings: Settings, seeds=(0, 1, 2)):
    """Mean macro-F1 and accuracy over repeated 5-fold CV, and the out-of-fold probabilities of seed 0."""
    f1s, accs, first = [], [], None
    for seed in seeds:
        proba, classes = cross_validate(texts, labels, vectors, settings, seed=seed)
        predicted = [classes[i] for i in proba.argmax(1)]
        f1s.append(macro_f1(labels, predicted))
        accs.append(float(np.mean([p == y for p, y in zip(predicted, labels)])))
        first = first or (proba, classes)
    return float(np.mean(f1s)), float(np.mean(accs)), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--write", action="store_true", help="store features and threshold in routing.json")
    parser.add_argument("--quick", action="store_true", help="USE + LR only (TF-IDF fits take minutes)")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    texts, labels = load(args.data)
    base = load_settings()
    embedder = make_embedder(base.embedder)
    start = time.perf_counter()
    vectors = embedder.queries(texts)
    print(f"{len(texts)} messages, {len(set(labels))} classes; embedded in {time.perf_counter() - start:.1f} s\n")

    candidates = {
        "(a) char 1-2-gram TF-IDF + LR": replace(base, features="tfidf"),
        "(b) USE + LR": replace(base, features="use"),
        "(c) combined, TF-IDF weight 0.3": replace(base, features="combined", tfidf_weight=0.3),
        "(c) combined, TF-IDF weight 0.5": replace(base, features="combined", tfidf_weight=0.5),
    }
    for c in (1.0, 5.0, 100.0):
        candidates[f"(b) USE + LR, C={c:g}"] = replace(base, features="use", use_c=c)
    if args.quick:
        candidates = {k: v for k, v in candidates.items() if v.features == "use"}
    results = {}
    print("| classifier (5-fold CV, mean of 3 shuffles) | macro-F1 | accuracy |\n|---|---|---|")
    for name, settings in candidates.items():
        f1, acc, oof = evaluate(texts, labels, vectors, settings)
        results[name] = (f1, acc, oof, settings)
        print(f"| {name} | {f1:.3f} | {acc:.3f} |", flush=True)

    # The fusion costs a second model: it is chosen only when it beats USE alone by a margin
    # larger than the spread between shuffles.
    use = "(b) USE + LR"
    combined = max((n for n in results if n.startswith("(c)")), key=lambda n: results[n][0], default=use)
    best = combined if results[combined][0] > results[use][0] + MARGIN else use
    f1, acc, (proba, classes), chosen = results[best]
    confidence = proba.max(1)
    correct = np.array([classes[i] == y for i, y in zip(proba.argmax(1), labels)])
    # The largest threshold that sends at most 10% below it.
    order = np.sort(confidence)
    k = int(np.floor(DISPATCH_SHARE * len(order)))
    threshold = float(order[k]) if k < len(order) else 1.0
    kept = confidence >= threshold
    print(f"\nchosen: {best}")
    print("| threshold | to dispatcher | accuracy of the rest | accuracy of all |\n|---|---|---|---|")
    print(f"| {threshold:.3f} | {1 - kept.mean():.1%} | {correct[kept].mean():.3f} | {correct.mean():.3f} |")

    # Keyword rules on top of the classifier: deciding vs. boosting the rule's class by 0.3.
    KEYWORDS_USED = dict(KEYWORDS)
    def with_rules(boost: float | None) -> list[str]:
        out = []
        for text, p in zip(texts, proba):
            hits = [c for k, c in KEYWORDS_USED.items() if k in text]
            p = p.copy()
            for c in hits:
                if boost is None:
                    p[:] = 0
                    p[classes.index(c)] = 1
                    break
                p[classes.index(c)] += boost
            out.append(classes[int(p.argmax())])
        return out

    matched = sum(any(k in t for k in KEYWORDS) for t in texts)
    print(f"\nkeyword rules ({len(KEYWORDS)} rules, matching {matched} of {len(texts)} messages):")
    print("| rule | messages containing it | of them in the rule's class |\n|---|---|---|")
    precise = {}
    for k, c in KEYWORDS.items():
        hit = [y for t, y in zip(texts, labels) if k in t]
        share = np.mean([y == c for y in hit]) if hit else 0.0
        print(f"| 含“{k}”→{c} | {len(hit)} | {share:.0%} |")
        if hit and share >= 0.9:
            precise[k] = c
    print("| rules | macro-F1 | accuracy |\n|---|---|---|")
    alone = [classes[i] for i in proba.argmax(1)]
    for rules_name, rules in (("all 12", KEYWORDS), (f"the {len(precise)} with ≥ 90% in their class", precise)):
        KEYWORDS_USED.clear()
        KEYWORDS_USED.update(rules)
        for name, predicted in (("none (classifier alone)", alone), (f"{rules_name}: a match decides", with_rules(None)),
                                (f"{rules_name}: a match adds 0.3", with_rules(0.3))):
            if predicted is alone and rules is precise:
                continue
            ok = np.mean([p == y for p, y in zip(predicted, labels)])
            print(f"| {name} | {macro_f1(labels, predicted):.3f} | {ok:.3f} |")

    # Latency: the served path, one message at a time (a trained model, the loaded embedder).
    chosen = replace(chosen, threshold=threshold)
    model = fit_model(list(zip(texts, labels)), embedder.queries, chosen, cv=False)
    router = Router(None, ROOT / "var" / "route-bench", settings=chosen,
                    embedder_source=lambda: embedder, directory=Directory())
    router.model = model
    router.classify(texts[0])
    times = []
    for text in texts:
        t = time.perf_counter()
        router.classify(text)
        times.append((time.perf_counter() - t) * 1000)
    print(f"\nclassify latency per message (n={len(times)}, mean {np.mean([len(t) for t in texts]):.0f} "
          f"characters): p50 {np.percentile(times, 50):.1f} ms, p99 {np.percentile(times, 99):.1f} ms")

    if args.write:
        data = {k: v for k, v in asdict(chosen).items() if k != "check_every"}
        data["threshold"] = round(threshold, 3)
        data["measured"] = {"data": "teddycup2020/labelled_messages_dev.csv", "messages": len(texts),
                            "macro_f1": round(f1, 3), "accuracy": round(acc, 3),
                            "dispatched": round(float(1 - kept.mean()), 3),
                            "accuracy_kept": round(float(correct[kept].mean()), 3)}
        SETTINGS_FILE.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        print(f"\nwrote {SETTINGS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
