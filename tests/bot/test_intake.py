"""How the intake form reads a citizen's free-text answers (bot/intake.py)."""
import pytest

from bot import intake
from casework.privacy import mask_phone, mask_text


@pytest.mark.parametrize("text", ["取消", "算了", "算了吧", "不投诉了", "我不想举报了", "取消这次登记", "撤销"])
def test_cancelling_the_whole_case(text):
    assert intake.is_cancel(text)


@pytest.mark.parametrize("text", ["不用了", "不留", "不清楚", "人民路88号", "否"])
def test_no_to_one_question_is_not_cancelling(text):
    assert not intake.is_cancel(text)


@pytest.mark.parametrize("text, expected", [
    ("是", "yes"), ("是的，确认提交", "yes"), ("确认", "yes"), ("好的", "yes"), ("OK", "yes"),
    ("否", "no"), ("不提交了", "no"), ("不对", "no"),
    ("修改地点", "case_place"), ("地址写错了", "case_place"), ("时间不对", "case_time"),
    ("电话改成13900001111", "case_contact"), ("改一下描述", "case_description"),
    ("今天天气不错", None),
])
def test_the_confirmation_reads_yes_no_or_what_to_correct(text, expected):
    assert intake.confirmation(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("13812345678", ("phone", "13812345678")),
    ("我的电话是 138 1234 5678 谢谢", ("phone", "13812345678")),
    ("0573-82345678", ("phone", "0573-82345678")),
    ("不留", ("none", None)), ("不用了", ("none", None)), ("不需要", ("none", None)),
    ("匿名", ("anonymous", None)),
    ("随便", None), ("1381234", None),
])
def test_contact_is_a_phone_none_or_anonymous(text, expected):
    assert intake.contact(text, may_be_anonymous=True) == expected


def test_only_a_report_may_be_anonymous():
    assert intake.contact("我要匿名", may_be_anonymous=False) == ("none", None)


@pytest.mark.parametrize("text, place", [
    ("南湖区人民路88号菜场门口每天早上占道经营", "南湖区"),
    ("幸福小区门口的路灯坏了", "幸福小区"),
    ("楼下饭店油烟太大", None),
])
def test_a_place_in_the_description_is_found(text, place):
    found = intake.place_in(text)
    assert (found is None) if place is None else found.startswith(place)


@pytest.mark.parametrize("text, yes", [
    ("办居住证要多久？", True), ("请问公积金怎么提取", True), ("能不能帮我查一下吗", True),
    ("人民路88号", False), ("昨天晚上10点", False),
])
def test_a_question_mid_form_is_recognised(text, yes):
    assert intake.is_question(text) is yes


def test_time_words_in_a_description():
    assert intake.time_in("昨晚10点楼上一直在装修") in ("昨晚", "10点")
    assert intake.time_in("楼上在装修") is None


def test_phone_and_id_numbers_are_masked():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("0573-82345678") == "057*****5678"
    assert mask_phone(None) == ""
    masked = mask_text("我叫张三，电话13812345678，身份证330402199001011234")
    assert "13812345678" not in masked and "138****5678" in masked
    assert "330402********1234" in masked
