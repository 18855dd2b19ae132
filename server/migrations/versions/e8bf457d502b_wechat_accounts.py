"""wechat accounts: the Official Accounts served at /wechat/{name}

Revision ID: e8bf457d502b
Revises: 5f86d640aee7
Create Date: 2026-11-26 23:17:02.635862
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'e8bf457d502b'
down_revision = '5f86d640aee7'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('app_secret', sa.String(length=128), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('encoding_aes_key', sa.String(length=43), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_wechat_accounts_name'))
    )


def downgrade() -> None:
    op.drop_table('wechat_accounts')
