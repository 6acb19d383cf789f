"""contacts: notes about the customer and tags of their own

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from frontdesk.db.base import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contact_notes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("contact_id", BIG_ID, nullable=False),
        sa.Column("author_user_id", BIG_ID, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_contact_notes_workspace_id_workspaces"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_contact_notes_contact_id_contacts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_user_id"], ["users.id"],
                                name=op.f("fk_contact_notes_author_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_notes")),
    )
    op.create_index(op.f("ix_contact_notes_workspace_id"), "contact_notes", ["workspace_id"])
    op.create_index("ix_contact_notes_contact", "contact_notes", ["contact_id", "id"])
    op.create_table(
        "contact_tags",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("contact_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_contact_tags_workspace_id_workspaces"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_contact_tags_contact_id_contacts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_tags")),
        sa.UniqueConstraint("contact_id", "name", name=op.f("uq_contact_tags_contact_id_name")),
    )
    op.create_index(op.f("ix_contact_tags_workspace_id"), "contact_tags", ["workspace_id"])
    op.create_index("ix_contact_tags_workspace_name", "contact_tags", ["workspace_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_contact_tags_workspace_name", table_name="contact_tags")
    op.drop_index(op.f("ix_contact_tags_workspace_id"), table_name="contact_tags")
    op.drop_table("contact_tags")
    op.drop_index("ix_contact_notes_contact", table_name="contact_notes")
    op.drop_index(op.f("ix_contact_notes_workspace_id"), table_name="contact_notes")
    op.drop_table("contact_notes")
