"""indexes for the recovery sweeps: unsettled messages, messages by time

Revision ID: a61d5e770004
Revises: a61d5e770003
Create Date: 2026-11-27 08:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'a61d5e770004'
down_revision = 'a61d5e770003'
branch_labels = None
depends_on = None

UNSETTLED = sa.text("status = 'received'")


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_unsettled', ['created_at'], unique=False,
                              sqlite_where=UNSETTLED, postgresql_where=UNSETTLED)
        batch_op.create_index('ix_messages_created', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_created')
        batch_op.drop_index('ix_messages_unsettled')
