"""case external ref: where an imported past case came from (casework/history.py)

Revision ID: ec90c76efbcc
Revises: 413d1435e6f8
Create Date: 2026-11-27 01:41:56.426521
"""
from alembic import op
import sqlalchemy as sa


revision = 'ec90c76efbcc'
down_revision = '413d1435e6f8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_ref', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_cases_external_ref'), ['external_ref'])


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_cases_external_ref'), type_='unique')
        batch_op.drop_column('external_ref')
