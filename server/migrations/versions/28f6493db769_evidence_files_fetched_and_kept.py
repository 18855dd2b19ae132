"""evidence files fetched and kept

Revision ID: 28f6493db769
Revises: ec90c76efbcc
Create Date: 2026-11-27 01:42:20.635894
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = '28f6493db769'
down_revision = 'ec90c76efbcc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_path', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('content_type', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('fetch_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('fetch_error', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.drop_column('fetch_error')
        batch_op.drop_column('fetch_attempts')
        batch_op.drop_column('size')
        batch_op.drop_column('content_type')
        batch_op.drop_column('stored_path')
