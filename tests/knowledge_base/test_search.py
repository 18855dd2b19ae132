"""The first Q&A search over the bundled demo base: right answer, honest doubt, honest no."""
import pytest

from knowledge_base.api import DEMO_QA, read_table
from knowledge_base.search import ANSWER, CLARIFY, NO_ANSWER, PublishedQA, QAIndex


@pytest.fixture(scope="module")
def index() -> QAIndex:
    rows = read_table(DEMO_QA)
    return QAIndex([PublishedQA(r.id, n, 1, r.question, r.similar_questions, r.answer, r.category, r.unit)
                    for n, r in enumerate(rows)])


def test_the_demo_base_is_large_and_varied():
    rows = read_table(DEMO_QA)
    assert len(rows) >= 150
    assert len({r.category for r in rows}) >= 12
    assert all(len(r.similar_questions) >= 2 for r in rows)


@pytest.mark.parametrize("query, entry", [
    ("社保卡丢了怎么补办", "SB-001"),
    ("社宝卡掉了咋办", "SB-001"),           # typo and spoken form
    ("新办的社保卡要激活吗", "SB-003"),      # the confusable neighbour of 补办
    ("买房提取公积金", "GJJ-002"),
    ("身份证丢了", "HJ-003"),
    ("驾照到期换证", "JT-001"),
    ("医保异地备案", "YB-001"),
])
def test_clear_questions_are_answered_with_the_right_entry(index, query, entry):
    decision = index.decide(query)
    assert decision.kind == ANSWER and decision.best.qa.entry_id == entry


def test_an_ambiguous_question_offers_candidates_instead_of_guessing(index):
    decision = index.decide("居住证")
    assert decision.kind == CLARIFY
    offered = [h.qa.entry_id for h in decision.hits]
    assert {"HJ-005", "HJ-006"} <= set(offered) and len(offered) <= 3


@pytest.mark.parametrize("query", ["今天天气怎么样", "帮我写作业", "我想问一下那个东西怎么弄", "。。。"])
def test_unrelated_questions_get_no_answer(index, query):
    assert index.decide(query).kind == NO_ANSWER


def test_an_exact_canonical_question_scores_near_one(index):
    hit = index.search("社保卡丢了怎么补办？", k=1)[0]
    assert hit.qa.entry_id == "SB-001" and hit.score >= 0.95
