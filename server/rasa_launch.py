"""Starts Rasa (`rasa run …`) with two fixes to its per-message cost. Run by Rasa's own Python.

This file is run by path with the Rasa environment's interpreter (Python 3.10, `rasa` importable),
never imported by govchat: the supervisor (server/supervisor.py) runs it in place of the `rasa`
script, and docker-compose.yml runs it in the Rasa container, so both serve the same way.

Measured with bench/load.py --profile (docs/performance.md, "Profile"), Rasa 3.6 spent:
- ~40% of its time re-checking one constant JSON schema: every action-server response goes
  through `jsonschema.validate(result, schema)`, which validates the *schema* against the
  meta-schema before validating the result. A validator built once does the same check.
- ~30% committing to the SQLite tracker store with SQLite's defaults (rollback journal, a full
  fsync per commit). WAL with synchronous=NORMAL keeps every commit atomic and the file
  consistent; a power cut can lose the last commits, which a crashed Rasa loses anyway.
"""
from __future__ import annotations

import os
import sys


def validate_with_one_validator() -> None:
    import jsonschema
    from rasa.core.actions.action import RemoteAction

    if not hasattr(RemoteAction, "action_response_format_spec"):    # another Rasa: serve as is
        print("rasa_launch: RemoteAction has no action_response_format_spec; not patched",
              file=sys.stderr)
        return
    schema = RemoteAction.action_response_format_spec()
    validator = jsonschema.validators.validator_for(schema)(schema)   # the class validate() picks

    def _validate_action_result(self, result):
        error = jsonschema.exceptions.best_match(validator.iter_errors(result))
        if error is not None:
            error.message += (". Failed to validate Action server response from API, make sure "
                              "your response from the Action endpoint is valid.")
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result


def sqlite_in_wal_mode() -> None:
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(connection, _record):
        if isinstance(connection, sqlite3.Connection):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def main() -> None:
    # Run by path, Python put server/ first on sys.path: its modules (config, db, metrics, …)
    # must not shadow anything Rasa imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    validate_with_one_validator()
    sqlite_in_wal_mode()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
