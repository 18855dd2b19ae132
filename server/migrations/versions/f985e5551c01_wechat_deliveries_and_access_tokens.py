"""wechat deliveries and access tokens: the customer-service delivery queue and the shared token per app id

Revision ID: f985e5551c01
Revises: e8bf457d502b
Create Date: 2026-11-26 23:41:36.709955
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'f985e5551c01'
down_revision = 'e8bf457d502b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_tokens',
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('access_token', sa.String(length=512), nullable=True),
    sa.Column('expires_at', server.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_wechat_tokens'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('to_user', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('parts_sent', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('delivered_at', server.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_deliveries_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('message_id', name=op.f('uq_deliveries_message_id'))
    )
    op.create_index('ix_deliveries_recipient', 'deliveries', ['account', 'to_user', 'status'])
    op.create_index('ix_deliveries_status_next', 'deliveries', ['status', 'next_attempt_at'])



def downgrade() -> None:
    op.drop_index('ix_deliveries_status_next', table_name='deliveries')
    op.drop_index('ix_deliveries_recipient', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_table('wechat_tokens')
