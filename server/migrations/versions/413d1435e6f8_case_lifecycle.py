"""case lifecycle

Revision ID: 413d1435e6f8
Revises: f211d3860edf
Create Date: 2026-11-27 01:29:34.294836
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = '413d1435e6f8'
down_revision = 'f211d3860edf'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases'))
    )
    op.create_table('extension_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', server.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_extension_requests_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extension_requests'))
    )
    with op.batch_alter_table('extension_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extension_requests_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatched_at', server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replied_at', server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reply_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reminded_at', server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', server.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('rating')
        batch_op.drop_column('reply_text')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('replied_at')
        batch_op.drop_column('accepted_at')
        batch_op.drop_column('dispatched_at')

    with op.batch_alter_table('extension_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_extension_requests_case_id'))

    op.drop_table('extension_requests')
    op.drop_table('job_leases')
