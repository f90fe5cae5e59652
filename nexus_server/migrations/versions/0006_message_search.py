"""message search: a full-text index on ``messages.content``, filled from the messages
already stored

SQLite: an FTS5 table over ``messages`` (external content, so the text is stored once)
kept in step by triggers, which also see the deletes that foreign keys cascade. A batch
alter of ``messages`` copies the table and drops its triggers: such a migration must
create them again. PostgreSQL: a GIN index on ``to_tsvector('simple', content)``, used
by queries that repeat that expression. Neither is in ``schema.py``: they are not
portable, and the schema comparison skips them by name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE_UPGRADE = (
    # unicode61 folds case; remove_diacritics 2 also folds accents ("cafe" finds "café").
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
    " INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    # External content: the index forgets a row only when told its old text.
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
    " INSERT INTO messages_fts(messages_fts, rowid, content)"
    " VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN"
    " INSERT INTO messages_fts(messages_fts, rowid, content)"
    " VALUES ('delete', old.id, old.content);"
    " INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
)
POSTGRESQL_UPGRADE = (
    "CREATE INDEX ix_messages_content_search ON messages"
    " USING gin (to_tsvector('simple', content))",
)
POSTGRESQL_DOWNGRADE = ("DROP INDEX IF EXISTS ix_messages_content_search",)


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_UPGRADE)
    else:
        _run(POSTGRESQL_UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_DOWNGRADE)
    else:
        _run(POSTGRESQL_DOWNGRADE)
