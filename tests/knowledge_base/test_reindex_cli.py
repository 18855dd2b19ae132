"""`govchat kb reindex` builds and stores the index; --full embeds everything again."""
import subprocess
import sys
from pathlib import Path

from knowledge_base import api as kb

GOVCHAT = str(Path(sys.executable).parent / "govchat")


async def test_reindex_stores_the_embeddings_and_full_starts_over(db, tmp_path):
    async with db.session() as session, session.begin():
        await kb.import_rows(session, kb.read_table(kb.DEMO_QA)[:20], actor="test", publish=True)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "GOVCHAT_EMBEDDER": "use",
           "GOVCHAT_VAR_DIR": str(tmp_path)}

    def reindex(*extra):
        result = subprocess.run([GOVCHAT, "kb", "reindex", *extra], capture_output=True, text=True,
                                timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "Index built: 20 published entries, " in reindex()
    stored = tmp_path / "kb-index" / "use.npz"
    assert stored.exists()
    assert "0 questions newly embedded" in reindex()
    assert "0 questions newly embedded" not in reindex("--full")
