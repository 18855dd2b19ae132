"""Long replies become several customer-service messages, cut where a sentence ends."""
from __future__ import annotations

import re

LIMIT = 600     # characters per message (issue 4); WeChat's own cap is in bytes and higher
# After 。！？ or a line break; a closing quote or bracket stays with its sentence. Not after an
# ASCII "?" or ".": those occur inside links and numbers.
_SENTENCE_END = re.compile(r"(?<=[。！？\n])(?![”’」』）)】])|(?<=[。！？][”’」』）)】])")
_CLAUSE_END = "，；、,; "


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for sentence in _pieces(text, limit):
        if current and len(current) + len(sentence) > limit:
            parts.append(current)
            current = ""
        current += sentence
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _pieces(text: str, limit: int) -> list[str]:
    """Sentences, with any sentence longer than a message cut at a clause, else hard."""
    out = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > limit:
            cut = max(sentence.rfind(c, 0, limit) for c in _CLAUSE_END) + 1
            cut = cut if cut > limit // 2 else limit
            out.append(sentence[:cut])
            sentence = sentence[cut:]
        if sentence:
            out.append(sentence)
    return out
