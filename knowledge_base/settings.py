"""Search settings: which embedding backend, how scores are fused, where the decision lies.

The numbers come from `bench/kb_eval.py --only calibrate --write`, which fits them on the
project's demo queries and stores them in calibration.json beside this file (docs/kb.md).
`GOVCHAT_EMBEDDER` may choose another backend; the thresholds then are only a starting point.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from knowledge_base.search import Thresholds

log = logging.getLogger(__name__)
CALIBRATION = Path(__file__).resolve().parent / "calibration.json"


@dataclass(frozen=True)
class SearchSettings:
    backend: str = "none"          # "none" (lexical only), "use", "e5" or "st:/path/to/model"
    dense_weight: float = 0.0
    answer_weight: float = 0.0     # how much the answer text counts (QAIndex)
    thresholds: Thresholds = Thresholds()


def load_settings(backend_override: str | None = None) -> SearchSettings:
    data = json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else {}
    settings = SearchSettings(
        backend=data.get("backend", "none"), dense_weight=data.get("dense_weight", 0.0),
        answer_weight=data.get("answer_weight", 0.0),
        thresholds=Thresholds(answer=data.get("answer", 0.55), margin=data.get("margin", 0.08),
                              clarify=data.get("clarify", 0.30)))
    if backend_override and backend_override != settings.backend:
        log.warning("search backend %s chosen by GOVCHAT_EMBEDDER; thresholds were calibrated "
                    "for %s", backend_override, settings.backend)
        weight = settings.dense_weight or 0.6
        settings = SearchSettings(backend_override, 0.0 if backend_override == "none" else weight,
                                  settings.answer_weight, settings.thresholds)
    return settings
