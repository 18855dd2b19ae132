"""Routing as an admin or dispatcher checks it: the right category and unit, districts, keyword
rules, the dispatcher for vague messages, retraining a running server, and refused imports."""
from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from casework import api as casework
from casework import routing, training
from casework.directory import split_list
from casework.routing import Directory, Router, UnitInfo, detect_place
from server import cli
from server.app import create_app
from server.appkeys import ROUTER
from server.config import Config

DEMO = casework.DEMO


@pytest.fixture(scope="module")
def embedder():
    from knowledge_base.embeddings import make_embedder
    return make_embedder("use")


def demo_directory(keywords=()) -> Directory:
    with open(DEMO / "units.csv", encoding="utf-8") as f:
        units = [UnitInfo(r["unit_id"], r["unit_name"], r["parent"] or None,
                          tuple(split_list(r["categories"])),
                          tuple(split_list(r["regions"])),
                          r["unit_id"] == "DISPATCH") for r in csv.DictReader(f)]
    parents = {}
    with open(DEMO / "categories.csv", encoding="utf-8") as f:
        for row in list(csv.reader(f))[1:]:
            for upper, lower in zip(row, row[1:]):
                parents[lower] = upper
    return Directory(units, parents, list(keywords))


@pytest.fixture(scope="module")
def demo_model(embedder):
    rows = training.read_examples(training.DEMO_EXAMPLES)
    return routing.fit_model(rows, embedder.queries, routing.load_settings(), cv=False,
                             group_of=demo_directory().group)


@pytest.fixture
def router(demo_model, embedder, tmp_path):
    r = Router(None, tmp_path, embedder_source=lambda: embedder, directory=demo_directory())
    r.model = demo_model
    return r


@pytest.mark.parametrize("text, group, unit", [
    ("公司拖欠我们工资已经四个月了，老板电话也不接", "劳动和社会保障", "JH-RSJ"),
    ("楼下新开的饭店油烟直接排到居民楼里，家里全是油烟味", "环境保护", "JH-ZFJ"),
    ("在超市买到过期的面包，商家不给退", "商贸旅游", "JH-SJJ"),
    ("公交车司机不等乘客站稳就开车，老人摔倒了", "交通运输", "JH-JTJ"),
])
def test_clear_messages_go_to_the_right_category_and_unit(router, text, group, unit):
    route = router.classify(text)
    assert (route.group, route.unit_id) == (group, unit), route
    assert route.confidence >= router.settings.threshold


def test_a_district_named_in_the_text_picks_the_district_unit(router):
    assert router.classify("南湖区有家饭店油烟直排，熏得人受不了").unit_id == "NH-GOV"
    route = router.classify("月河街道的小区物业不管事，电梯坏了一个月没人修")
    assert (route.district, route.unit_id) == ("南湖区", "NH-YHJD")
    assert "物业管理" in router.directory.ancestors(route.category)
    # The form's district wins over the text.
    assert router.classify("南湖区有家饭店油烟直排，熏得人受不了", district="秀洲区").unit_id == "XZ-GOV"


def test_place_detection_ignores_residential_compounds():
    assert detect_place("我住在阳光花园小区，社区不管", ["南湖区"], {}) == (None, None)
    assert detect_place("我是西湖区的居民", ["南湖区"], {}) == ("西湖区", None)
    assert detect_place("经开区城南街道", ["经开区"], {"城南街道": "经开区"}) == ("经开区", "城南街道")


def test_a_keyword_rule_overrides_the_classifier(router):
    text = "学校门口的小卖部卖三无辣条给学生吃"
    assert router.classify(text).group == "教育文体"
    router.directory = demo_directory(keywords=[("三无", "食品安全")])
    route = router.classify(text)
    assert (route.category, route.unit_id) == ("食品安全", "JH-SJJ")
    assert "含“三无”→食品安全" in route.reason
    assert router.directory.group(route.alternatives[0][0]) == "教育文体"
    # Without a model the rule alone decides (not the directory matcher).
    router.model = None
    route = router.classify(text)
    assert (route.category, route.unit_id, route.confidence) == ("食品安全", "JH-SJJ", 1.0)
    assert route.reason == "关键词规则：含“三无”→食品安全"


def test_a_vague_message_goes_to_the_dispatcher_with_alternatives(router):
    route = router.classify("我要投诉")
    assert route.unit_id == "DISPATCH" and route.confidence < router.settings.threshold
    assert route.category and len(route.alternatives) == 3
    assert "转分派中心" in route.reason


# From the directory alone (no examples, no model) --------------------------------------------

@pytest.fixture(scope="module")
def directory_router(embedder, tmp_path_factory):
    """No model: the matcher (its category embeddings made once for the module)."""
    return Router(None, tmp_path_factory.mktemp("route"), embedder_source=lambda: embedder,
                  directory=demo_directory())


@pytest.mark.parametrize("text, unit", [
    ("在一家装修公司干了半年，老板一直欠着三个月工资不发", "JH-RSJ"),
    ("社保卡丢了想补办，窗口说要等一个月才能拿到", "JH-SBZX"),
    ("买的期房说好去年交房，现在楼还没封顶", "JH-JSJ"),
])
def test_with_no_examples_a_clear_message_reaches_its_unit(directory_router, text, unit):
    route = directory_router.classify(text)
    assert route.unit_id == unit, route
    assert route.reason.startswith("目录匹配：") and route.confidence >= directory_router.settings.zero_shot_threshold


@pytest.mark.parametrize("text, unit", [
    # A street named after another department's business.
    ("住在劳动路，楼下烧烤店的油烟天天往我家窗户里钻", "JH-ZFJ"),
    ("人民医院对面的工地渣土车不盖篷布，灰尘满天飞", "JH-ZFJ"),
    # A district named, but social insurance is the city's centre, deeper than the district.
    ("南湖区一家公司两年都没给我们缴养老保险和失业保险", "JH-SBZX"),
])
def test_with_no_examples_a_misleading_address_still_reaches_the_bureau(directory_router, text, unit):
    assert directory_router.classify(text).unit_id == unit


def test_with_no_examples_a_vague_message_goes_to_the_dispatcher(directory_router):
    route = directory_router.classify("有个问题想反映一下")
    assert route.unit_id == "DISPATCH" and "转分派中心" in route.reason and len(route.alternatives) == 3


# With the database --------------------------------------------------------------------------

async def load_demo(db) -> None:
    async with db.session() as session, session.begin():
        await casework.import_units(session, DEMO / "units.csv")
        await casework.import_categories(session, DEMO / "categories.csv")
        await training.replace_examples(session, training.read_examples(training.DEMO_EXAMPLES))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


async def govchat(monkeypatch, db, tmp_path, *argv) -> int:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("GOVCHAT_VAR_DIR", str(tmp_path))
    return await asyncio.to_thread(cli.main, list(argv))


async def test_retraining_through_the_cli_reaches_the_running_server(db, tmp_path, monkeypatch):
    await load_demo(db)
    config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none")
    async with TestClient(TestServer(create_app(config))) as client:
        client.app[ROUTER].check_every = 0
        text = {"text": "拖欠工资四个月了，老板跑路了"}
        body = await (await client.post("/api/route", json=text)).json()
        assert (body["category"], body["unit_id"]) == ("拖欠工资", "JH-RSJ")
        assert set(body) >= {"category", "unit_id", "confidence", "alternatives", "district", "reason"}

        examples = write_csv(tmp_path / "new.csv", [["message", "category"]]
                             + [[f"工资拖欠问题{i}，老板不发钱", "社会保险"] for i in range(5)]
                             + [[f"饭店油烟扰民{i}", "餐饮油烟"] for i in range(5)])
        assert await govchat(monkeypatch, db, tmp_path, "route", "train", str(examples)) == 0
        body = await (await client.post("/api/route", json=text)).json()
        # The new model serves at once (averaged with the directory matcher, which still knows
        # that unpaid wages are 劳动关系 rather than these mislabelled examples' 社会保险).
        assert client.app[ROUTER].model.counts == {"社会保险": 5, "餐饮油烟": 5}
        assert body["reason"].startswith("分类模型加目录匹配")
        assert body["group"] == "劳动和社会保障"

        resp = await client.post("/api/route", json={"district": "南湖区"})
        assert resp.status == 400 and "缺少" in (await resp.json())["error"]
        resp = await client.post("/api/route", json={"text": "长" * 2001})
        assert resp.status == 400


async def test_classify_file_prints_one_json_line_per_message(db, tmp_path, monkeypatch, capsys):
    await load_demo(db)
    assert await govchat(monkeypatch, db, tmp_path, "route", "train", str(training.DEMO_EXAMPLES)) == 0
    assert await govchat(monkeypatch, db, tmp_path, "route", "keyword", "add", "油烟", "餐饮油烟") == 0
    capsys.readouterr()
    messages = write_csv(tmp_path / "m.txt", [["公司拖欠工资不发"], [], ["楼下烧烤店油烟很大"]])
    assert await govchat(monkeypatch, db, tmp_path, "route", "classify", "--file", str(messages)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["unit_id"] for x in lines] == ["JH-RSJ", "JH-ZFJ"]
    assert lines[1]["category"] == "餐饮油烟" and "含“油烟”→餐饮油烟" in lines[1]["reason"]


async def test_bad_files_are_refused_with_the_row_and_nothing_is_stored(db, tmp_path, monkeypatch, capsys):
    units = write_csv(tmp_path / "units.csv", [
        ["unit_id", "unit_name", "parent", "categories", "regions"],
        ["A", "甲单位", "", "劳动关系", ""],
        ["B", "", "A", "", ""],
        ["C", "丙单位", "NOPE", "", ""]])
    assert await govchat(monkeypatch, db, tmp_path, "units", "import", str(units)) == 2
    err = capsys.readouterr().err
    assert "row 3: unit_name is empty" in err and "row 4: parent NOPE" in err
    examples = write_csv(tmp_path / "ex.csv", [["message", "category"], ["工资不发", "劳动关系"], ["油烟", ""]])
    assert await govchat(monkeypatch, db, tmp_path, "route", "train", str(examples)) == 2
    assert "row 3: the category is empty" in capsys.readouterr().err
    async with db.session() as session:
        assert await casework.count_units(session) == 0 and await training.count_examples(session) == 0


async def test_units_and_categories_import_from_xlsx(db, tmp_path, monkeypatch, capsys):
    from openpyxl import Workbook

    workbook = Workbook()
    with open(DEMO / "units.csv", encoding="utf-8") as f:
        for row in csv.reader(f):
            workbook.active.append(row)
    workbook.save(tmp_path / "units.xlsx")
    assert await govchat(monkeypatch, db, tmp_path, "units", "import", str(tmp_path / "units.xlsx")) == 0
    assert await govchat(monkeypatch, db, tmp_path, "categories", "import", str(DEMO / "categories.csv")) == 0
    assert "Imported 32 units." in capsys.readouterr().out
    async with db.session() as session:
        directory = await routing.load_directory(session)
    assert directory.dispatcher == "DISPATCH" and directory.group("餐饮油烟") == "环境保护"
    assert directory.unit_for("拖欠工资", "海宁县") == "HN-GOV"
