"""Pure pieces of the custom actions: what a citizen types, read the way they meant it."""
import pytest

from bot.actions.cases import description_from_trigger
from bot.actions.service import rating_score


@pytest.mark.parametrize("text, score", [
    ("非常满意", 5), ("满意", 4), ("基本满意", 3), ("不满意", 2), ("非常不满意", 1),
    ("评价：很满意", 5), ("给你打5分", 5), ("五星好评", 5), ("打1分", 1), ("两星吧", 2),
    ("一般般吧", 3), ("不太满意", 2),
])
def test_rating_words_and_scores(text, score):
    assert rating_score(text) == score


def test_no_rating_in_unrelated_text():
    assert rating_score("社保卡怎么办") is None


@pytest.mark.parametrize("text, description", [
    ("我要投诉楼下饭店油烟太大", "楼下饭店油烟太大"),
    ("投诉：小区门口路灯坏了", "小区门口路灯坏了"),
    ("我想实名举报一下有人偷倒建筑垃圾", "有人偷倒建筑垃圾"),
    ("您好，我要反映工地夜间施工噪音", "工地夜间施工噪音"),
    ("我要投诉", None),
    ("举报", None),
    ("投诉一下", None),
])
def test_the_triggering_message_can_already_carry_the_description(text, description):
    assert description_from_trigger(text) == description


def test_an_english_question_is_told_the_answer_is_in_chinese():
    from bot.actions.faq import ENGLISH_NOTE, answer_fields
    from knowledge_base.search import PublishedQA

    qa = PublishedQA("CRJ-002", 1, 3, "护照快过期了怎么换？", (), "可在出入境窗口换发。", unit="出入境管理支队")
    english = answer_fields(qa, "How do I renew my passport?")
    assert english["text"].startswith(ENGLISH_NOTE) and "可在出入境窗口换发。" in english["text"]
    assert english["source_ref"] == "qa:CRJ-002@3"
    assert not answer_fields(qa, "护照怎么换")["text"].startswith(ENGLISH_NOTE)
