"""The served index follows the base: stored embeddings, only new questions embedded, IVF at scale."""
import numpy as np
import pytest

from knowledge_base import api as kb
from knowledge_base import workflow as wf
from knowledge_base.embeddings import make_embedder
from knowledge_base.search import PublishedQA, QAIndex
from knowledge_base.settings import SearchSettings
from knowledge_base.vectors import VectorStore

USE = SearchSettings(backend="use", dense_weight=0.6, answer_weight=0.3)


@pytest.fixture(scope="module")
def use():
    return make_embedder("use")


@pytest.fixture
async def demo_db(db):
    async with db.session() as session, session.begin():
        await kb.import_rows(session, kb.read_table(kb.DEMO_QA), actor="test", publish=True)
    return db


def _questions(rows) -> int:
    return len({q for r in rows for q in (r.question, *r.similar_questions)})


async def test_a_restart_reuses_the_stored_embeddings(demo_db, tmp_path):
    first = kb.KnowledgeBase(demo_db, USE, tmp_path)
    await first.refresh()
    assert first.last_embedded == _questions(kb.read_table(kb.DEMO_QA))
    assert (tmp_path / "use.npz").exists()

    again = kb.KnowledgeBase(demo_db, USE, tmp_path)
    await again.refresh()
    assert again.last_embedded == 0
    assert again.decide("社保卡丢了怎么补办").best.qa.entry_id == "SB-001"


async def test_a_published_edit_embeds_only_its_new_questions_and_is_served(demo_db, tmp_path):
    base = kb.KnowledgeBase(demo_db, USE, tmp_path)
    await base.refresh()
    async with demo_db.session() as s, s.begin():
        v = await wf.save_draft(s, "SB-001", "author", question="社保卡丢了怎么补办？",
                                similar_questions=["社保卡被偷了怎么重新办一张"], answer="新的答复：带身份证到任一网点补办。")
        await wf.submit(s, "SB-001", v.number, "author")
        await wf.approve(s, "SB-001", v.number, "reviewer")
    assert await base.refresh_if_changed()
    assert base.last_embedded == 1
    assert base.get("SB-001").answer.startswith("新的答复")
    assert base.index.search("社保卡被偷了怎么重新办一张", 1)[0].qa.entry_id == "SB-001"
    assert not await base.refresh_if_changed()     # nothing changed since


async def test_a_damaged_store_costs_a_re_embed_not_a_crash(tmp_path, use):
    (tmp_path / "use.npz").write_bytes(b"not a numpy file")
    store = VectorStore(tmp_path, "use")
    vectors, new = store.vectors(["社保卡怎么补办", "护照怎么办"], use.passages)
    assert new == 2 and vectors.shape == (2, use.dim)
    store.save("stamp-1")
    reread = VectorStore(tmp_path, "use")
    assert len(reread) == 2 and reread.stamp == "stamp-1"
    again, new = reread.vectors(["护照怎么办"], use.passages)
    assert new == 0 and np.allclose(again[0], vectors[1], atol=1e-3)


def test_a_store_made_by_another_model_is_not_used(tmp_path, use):
    store = VectorStore(tmp_path, "use")
    store.vectors(["社保卡怎么补办"], use.passages)
    store.save("s")
    (tmp_path / "use.npz").rename(tmp_path / "e5.npz")
    assert len(VectorStore(tmp_path, "e5")) == 0


def test_the_ivf_index_for_large_bases_ranks_like_the_exact_one(use):
    rows = kb.read_table(kb.DEMO_QA)
    entries = [PublishedQA(r.id, n, 1, r.question, r.similar_questions, r.answer) for n, r in enumerate(rows)]
    exact = QAIndex(entries, embedder=use, answer_weight=0.3)

    class Approximate(QAIndex):
        IVF_FROM = 100      # the demo base has ~900 questions: force IVF

    approx = Approximate(entries, embedder=use, answer_weight=0.3, vectors=exact.vectors)
    assert type(approx._dense).__name__ == "IndexIVFScalarQuantizer"
    queries = ["社保卡丢了怎么补办", "公积金租房提取", "护照快过期了", "驾驶证到期换证", "低保怎么申请"]
    for q in queries:
        assert [h.qa.entry_id for h in approx.search(q, 3)] == [h.qa.entry_id for h in exact.search(q, 3)]
