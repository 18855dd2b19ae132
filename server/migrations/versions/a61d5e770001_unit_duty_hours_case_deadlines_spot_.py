"""unit duty hours, case deadlines, spot checks, assessment indicators

Revision ID: a61d5e770001
Revises: e2318456b37e
Create Date: 2026-11-27 04:45:27.973805
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'a61d5e770001'
down_revision = 'e2318456b37e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assessment_indicators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('measure', sa.String(length=48), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('higher_is_better', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment_indicators'))
    )
    op.create_table('case_deadlines',
    sa.Column('case_type', sa.String(length=16), nullable=False),
    sa.Column('working_days', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('case_type', name=op.f('pk_case_deadlines'))
    )
    op.create_table('spot_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quarter', sa.String(length=7), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('per_unit', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spot_checks'))
    )
    op.create_table('spot_check_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('spot_check_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.String(length=32), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('finding', sa.String(length=16), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('checked_by', sa.String(length=64), nullable=True),
    sa.Column('checked_at', server.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_spot_check_items_case_id_cases')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_spot_check_items_conversation_id_conversations')),
    sa.ForeignKeyConstraint(['spot_check_id'], ['spot_checks.id'], name=op.f('fk_spot_check_items_spot_check_id_spot_checks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_spot_check_items_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spot_check_items'))
    )
    with op.batch_alter_table('spot_check_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spot_check_items_spot_check_id'), ['spot_check_id'], unique=False)

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duty_start', sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column('duty_end', sa.String(length=5), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_column('duty_end')
        batch_op.drop_column('duty_start')

    with op.batch_alter_table('spot_check_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spot_check_items_spot_check_id'))

    op.drop_table('spot_check_items')
    op.drop_table('spot_checks')
    op.drop_table('case_deadlines')
    op.drop_table('assessment_indicators')
