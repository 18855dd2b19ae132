"""kb tags, notices, query log and feedback

Revision ID: 5f86d640aee7
Revises: dfd06a9d400d
Create Date: 2026-11-26 22:28:32.067431
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = '5f86d640aee7'
down_revision = 'dfd06a9d400d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.String(length=64), nullable=False),
    sa.Column('helpful', sa.Boolean(), nullable=False),
    sa.Column('at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_kb_feedback_message_id_messages')),
    sa.ForeignKeyConstraint(['version_id'], ['kb_versions.id'], name=op.f('fk_kb_feedback_version_id_kb_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_feedback')),
    sa.UniqueConstraint('message_id', name=op.f('uq_kb_feedback_message_id'))
    )
    op.create_table('kb_queries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('entry_id', sa.String(length=64), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_kb_queries_conversation_id_conversations')),
    sa.ForeignKeyConstraint(['version_id'], ['kb_versions.id'], name=op.f('fk_kb_queries_version_id_kb_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_queries'))
    )
    with op.batch_alter_table('kb_queries', schema=None) as batch_op:
        batch_op.create_index('ix_kb_queries_entry_at', ['entry_id', 'at'], unique=False)
        batch_op.create_index('ix_kb_queries_outcome_at', ['outcome', 'at'], unique=False)

    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        # Existing versions get no tags.
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('notice_until', server.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        batch_op.drop_column('notice_until')
        batch_op.drop_column('tags')

    with op.batch_alter_table('kb_queries', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_queries_outcome_at')
        batch_op.drop_index('ix_kb_queries_entry_at')

    op.drop_table('kb_queries')
    op.drop_table('kb_feedback')
