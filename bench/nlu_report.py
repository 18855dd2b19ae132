"""Cross-validate the Rasa NLU pipeline and write docs/nlu.md (per-intent precision/recall/F1).

Run: `make nlu-report` (5 folds; about 10 minutes on 2 cores).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.config import load_config  # noqa: E402
from server.rasa_model import rasa_env, rasa_executable  # noqa: E402

FOLDS = 5


def main() -> int:
    config = load_config()
    project = config.rasa_project
    out = config.var_dir / "rasa" / "nlu-cv"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cmd = [str(rasa_executable(config)), "test", "nlu", "--cross-validation", "--folds", str(FOLDS),
           "--config", str(project / "config.yml"), "--nlu", str(project / "data" / "nlu.yml"),
           "--domain", str(project / "domain.yml"), "--out", str(out)]
    print("Running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=out, env=rasa_env(), check=True)
    minutes = (time.monotonic() - started) / 60
    report = json.loads((out / "intent_report.json").read_text())
    write_markdown(report, minutes)
    return 0


def write_markdown(report: dict, minutes: float) -> None:
    intents = sorted(k for k, v in report.items() if isinstance(v, dict) and "support" in v
                     and k not in ("micro avg", "macro avg", "weighted avg"))
    lines = [
        "# NLU: intent classification, cross-validated",
        "",
        f"Measured {date.today():%Y-%m-%d} with `make nlu-report` ({FOLDS}-fold cross-validation of "
        "`bot/rasa/config.yml` over `bot/rasa/data/nlu.yml`, "
        f"{minutes:.0f} minutes on this machine). The numbers are pooled over the held-out folds.",
        "",
        "| intent | precision | recall | F1 | examples |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in intents:
        r = report[name]
        lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1-score']:.3f} | {r['support']} |")
    for avg in ("macro avg", "weighted avg"):
        if avg in report:
            r = report[avg]
            lines.append(f"| **{avg}** | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1-score']:.3f} | {r['support']} |")
    if "accuracy" in report:
        lines += ["", f"Accuracy: {report['accuracy']:.3f}."]
    lines += [
        "",
        "Messages the classifier is unsure of (below the FallbackClassifier threshold) are not lost:",
        "they go to the Q&A search, which answers, asks which question was meant, or says honestly",
        "that it has no answer and offers a person.",
        "",
    ]
    (ROOT / "docs" / "nlu.md").write_text("\n".join(lines), encoding="utf-8")
    print("Wrote docs/nlu.md")


if __name__ == "__main__":
    sys.exit(main())
