"""case facts for reports

Revision ID: a61d5e770002
Revises: a61d5e770001
Create Date: 2026-11-27 04:52:16.691163
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'a61d5e770002'
down_revision = 'a61d5e770001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fact_marks',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('calendar_key', sa.String(length=64), nullable=False),
    sa.Column('refreshed_at', server.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_fact_marks'))
    )
    op.create_table('case_facts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('measure', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('unit_id', sa.String(length=32), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('case_type', sa.String(length=16), nullable=True),
    sa.Column('channel', sa.String(length=100), nullable=True),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_facts_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_facts'))
    )
    with op.batch_alter_table('case_facts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_facts_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_case_facts_measure_day', ['measure', 'day'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('case_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_case_facts_measure_day')
        batch_op.drop_index(batch_op.f('ix_case_facts_case_id'))

    op.drop_table('case_facts')
    op.drop_table('fact_marks')
