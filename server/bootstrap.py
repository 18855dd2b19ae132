"""First start: demo content and the first admin account, each only when missing."""
from __future__ import annotations

from admin import api as admin_api
from admin import wordlists
from casework import api as casework
from casework import training as routing_examples
from knowledge_base import api as kb
from server.db import Database

DEMO_LOADED = "demo.load"


async def load_demo_content(db: Database) -> list[str]:
    """Load the bundled units, categories and Q&A base, once in the database's life.

    The audit log remembers that it happened, so content an admin later removes stays removed.
    """
    loaded = []
    async with db.session() as session, session.begin():
        if await admin_api.has_audit(session, DEMO_LOADED):
            return loaded
        if await casework.count_units(session) == 0:
            n = await casework.import_units(session, casework.DEMO / "units.csv")
            c = await casework.import_categories(session, casework.DEMO / "categories.csv")
            loaded.append(f"{n} units, {c} categories")
            if await routing_examples.count_examples(session) == 0:
                e = await routing_examples.replace_examples(
                    session, routing_examples.read_examples(routing_examples.DEMO_EXAMPLES))
                loaded.append(f"{e} routing examples")
        if await kb.count_entries(session) == 0:
            rows = kb.read_table(kb.DEMO_QA)
            await kb.import_rows(session, rows, actor="system", publish=True)
            admin_api.audit(session, "system", "kb.import", str(kb.DEMO_QA.name),
                            entries=len(rows), published=True)
            loaded.append(f"{len(rows)} Q&A entries")
        if n := await wordlists.load_demo(session):     # neutral examples; harmful stays empty
            loaded.append(f"{n} staff caution words")
        admin_api.audit(session, "system", DEMO_LOADED, content="; ".join(loaded))
    return loaded


async def ensure_admin(db: Database) -> str | None:
    """Create the `admin` account if no admin exists; returns its one-time password."""
    async with db.session() as session, session.begin():
        if await admin_api.count_admins(session):
            return None
        _, password = await admin_api.create_user(session, username="admin", role="admin",
                                                  actor="system", display_name="管理员")
        return password
