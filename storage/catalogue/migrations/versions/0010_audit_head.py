"""audit_head: the chain head recorded with every audit-log entry; audit_log (action, object);
quick checks recorded as what they are (outcome ``present``, PREMIS ``validation``)

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # the head of a log written before this table existed is taken as it is now
    op.execute(
        "INSERT INTO audit_head (id, seq, hash, entries) SELECT 1, "
        "COALESCE((SELECT max(seq) FROM audit_log), 0), "
        f"COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), '{GENESIS}'), "
        "(SELECT count(*) FROM audit_log)")
    # the cross-checks of the log against the catalogue look entries up by action and object
    op.create_index("ix_audit_log_action_object", "audit_log", ["action", "object"])
    # a quick check reads no byte: its result was recorded as a fixity check "pass", which
    # the dashboard's coverage counted as a full one
    op.execute("UPDATE fixity_checks SET outcome = 'present' "
               "WHERE depth = 'quick' AND outcome = 'pass'")
    op.execute("UPDATE events SET type = 'validation', outcome = CASE outcome "
               "WHEN 'pass' THEN 'present' ELSE outcome END "
               "WHERE type = 'fixity check' AND detail LIKE 'quick check%'")


def downgrade() -> None:
    op.drop_index("ix_audit_log_action_object", table_name="audit_log")
    op.drop_table("audit_head")
