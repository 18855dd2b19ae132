"""staff inbox: conversation owner and notes

Who answers a handed-off conversation (claimed by one staff member at a time) and the staff's
internal notes on it, never sent to the citizen.

Revision ID: 77ea6e6a1021
Revises: ae267b3de450
Create Date: 2026-11-27 02:10:59.555566
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = '77ea6e6a1021'
down_revision = 'ae267b3de450'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversation_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_notes_conversation_id_conversations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_notes'))
    )
    with op.batch_alter_table('conversation_notes', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_notes_conversation', ['conversation_id', 'created_at'], unique=False)

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', server.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('assigned_to')

    with op.batch_alter_table('conversation_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_notes_conversation')

    op.drop_table('conversation_notes')
