"""indexes on events by case and conversation

Revision ID: a61d5e770003
Revises: a61d5e770002
Create Date: 2026-11-27 04:56:58.484443
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'a61d5e770003'
down_revision = 'a61d5e770002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_case_id', ['case_id'], unique=False)
        batch_op.create_index('ix_events_conversation_id', ['conversation_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_conversation_id')
        batch_op.drop_index('ix_events_case_id')

