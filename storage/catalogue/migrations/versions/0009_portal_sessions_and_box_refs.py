"""portal sessions kept in the catalogue (logout ends them); random public box references

Revision ID: 0009
Revises: 0008
"""
import secrets

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
REF_BYTES = 12  # 16 URL-safe characters, 96 random bits


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_portal_sessions_user_id", "portal_sessions", ["user_id"])
    op.create_index("ix_portal_sessions_expires_at", "portal_sessions", ["expires_at"])
    # boxes made before keep their id (their labels' tokens point at it) and get a reference
    with op.batch_alter_table("boxes") as batch:
        batch.add_column(sa.Column("ref", sa.String(32), nullable=True))
    bind = op.get_bind()
    boxes = sa.table("boxes", sa.column("id", sa.Integer()), sa.column("ref", sa.String(32)))
    for (box_id,) in bind.execute(sa.select(boxes.c.id)).all():
        bind.execute(boxes.update().where(boxes.c.id == box_id)
                     .values(ref=secrets.token_urlsafe(REF_BYTES)))
    with op.batch_alter_table("boxes") as batch:
        batch.alter_column("ref", existing_type=sa.String(32), nullable=False)
        batch.create_unique_constraint("uq_boxes_ref", ["ref"])


def downgrade() -> None:
    with op.batch_alter_table("boxes") as batch:
        batch.drop_constraint("uq_boxes_ref", type_="unique")
        batch.drop_column("ref")
    op.drop_index("ix_portal_sessions_expires_at", table_name="portal_sessions")
    op.drop_index("ix_portal_sessions_user_id", table_name="portal_sessions")
    op.drop_table("portal_sessions")
