"""case intake fields, attachments, workday overrides, routing rules and examples

Revision ID: f211d3860edf
Revises: f985e5551c01
Create Date: 2026-11-27 01:19:29.650466
"""
from alembic import op
import sqlalchemy as sa
import server.db


revision = 'f211d3860edf'
down_revision = 'f985e5551c01'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('routing_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_examples'))
    )
    with op.batch_alter_table('routing_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_examples_category'), ['category'], unique=False)

    op.create_table('routing_keywords',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('keyword', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_keywords')),
    sa.UniqueConstraint('keyword', 'category', name=op.f('uq_routing_keywords_keyword_category'))
    )
    op.create_table('workday_overrides',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('is_workday', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_workday_overrides'))
    )
    op.create_table('case_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('media_id', sa.String(length=256), nullable=True),
    sa.Column('url', sa.String(length=1024), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', server.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_attachments_case_id_cases')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_case_attachments_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_attachments'))
    )
    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_attachments_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('district', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('address', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('latitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('occurred', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('anonymous', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('route_confidence', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('deadline', sa.Date(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_cases_category_id_categories'), 'categories', ['category_id'], ['id'])




def downgrade() -> None:
    
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cases_category_id_categories'), type_='foreignkey')
        batch_op.drop_column('deadline')
        batch_op.drop_column('route_confidence')
        batch_op.drop_column('anonymous')
        batch_op.drop_column('phone')
        batch_op.drop_column('occurred')
        batch_op.drop_column('longitude')
        batch_op.drop_column('latitude')
        batch_op.drop_column('address')
        batch_op.drop_column('district')
        batch_op.drop_column('category_id')

    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_attachments_case_id'))

    op.drop_table('case_attachments')
    op.drop_table('workday_overrides')
    op.drop_table('routing_keywords')
    with op.batch_alter_table('routing_examples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_examples_category'))

    op.drop_table('routing_examples')

