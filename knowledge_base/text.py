"""Chinese text normalisation and tokens for lexical matching."""
from __future__ import annotations

import logging
import re
import unicodedata

from pathlib import Path

import jieba

jieba.setLogLevel(logging.WARNING)
TERMS = Path(__file__).resolve().parent / "terms.txt"


def load_terms(path: Path = TERMS) -> None:
    """Teach jieba the service terms (one `word frequency` per line, # comments)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            jieba.add_word(parts[0], int(parts[1]) if len(parts) > 1 else None)


load_terms()

# Words that say "this is a question" but not what about; they would match every entry.
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 哦 嘛 么 我 你 您 他 她 它 们 是 在 有 和 与 及 或 要 想 能 可以 可 会 "
    "怎么 怎样 怎么样 如何 咋 咋办 什么 哪些 哪里 哪儿 哪个 多少 几 请问 请 问 一下 下 "
    "需要 应该 该 去 到 给 把 被 让 就 都 也 还 又 这 那 这个 那个 个 办 弄 搞 一个 呢 嗯 "
    "谢谢 你好 您好 帮 帮忙 麻烦 告诉 知道 问题 手续 流程 啥 咋".split()
)

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)

# Spoken and common misspelled forms → the word the base uses. Applied to questions and
# queries alike, so each side only has to say it one way.
SYNONYMS = {
    "头回": "第一次", "头一次": "第一次", "第一回": "第一次", "首次": "第一次",
    "咋样": "怎么", "咋": "怎么", "怎样": "怎么", "如何": "怎么",
    "找不着": "丢了", "找不到": "丢了", "弄丢": "丢了", "掉了": "丢了", "遗失": "丢了",
    "身分证": "身份证", "驾照": "驾驶证", "电瓶车": "电动自行车", "房产证": "不动产证",
    "宝宝": "孩子", "小孩": "孩子", "娃": "孩子", "老公": "配偶", "老婆": "配偶", "爱人": "配偶",
}
_SYNONYM = re.compile("|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)))


def normalise(text: str) -> str:
    """Full-width to half-width, lower case, spoken forms unified, punctuation and spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SYNONYM.sub(lambda m: SYNONYMS[m.group(0)], text)
    return _PUNCT.sub(" ", text).strip()


def tokens(text: str) -> list[str]:
    """jieba search-mode words (minus stopwords) plus character bigrams.

    Bigrams make typos (社宝卡) and unsegmented fragments still overlap with the right entry.
    """
    clean = normalise(text)
    words = [w for w in jieba.lcut_for_search(clean) if w.strip() and w not in STOPWORDS]
    return words + _bigrams(clean)


def bigrams(text: str) -> list[str]:
    """Character bigrams alone: for long texts (answers), ten times faster than jieba."""
    return _bigrams(normalise(text))


def _bigrams(clean: str) -> list[str]:
    grams: list[str] = []
    for chunk in clean.split():
        chars = [c for c in chunk if c not in STOPWORDS]
        grams.extend([f"#{a}{b}" for a, b in zip(chars, chars[1:])])
        if len(chars) == 1:
            grams.append("#" + chars[0])
    return grams
