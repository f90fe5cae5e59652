"""images: the ``media`` table for avatars, banners and community icons; the free-text
values the image columns held before are cleared

Before this revision no image could be stored, so no value in ``users.avatar``,
``users.banner``, ``guilds.icon`` or ``guilds.banner`` names one (even a value shaped
like a hash would only lead clients to a 404): all of them are cleared.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_media")),
    )
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_owner_id_kind"), ["owner_id", "kind"], unique=False
        )
    users = sa.table("users", sa.column("avatar", sa.String), sa.column("banner", sa.String))
    guilds = sa.table("guilds", sa.column("icon", sa.String), sa.column("banner", sa.String))
    op.execute(
        sa.update(users)
        .where(users.c.avatar.is_not(None) | users.c.banner.is_not(None))
        .values(avatar=None, banner=None)
    )
    op.execute(
        sa.update(guilds)
        .where(guilds.c.icon.is_not(None) | guilds.c.banner.is_not(None))
        .values(icon=None, banner=None)
    )


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_owner_id_kind"))
    op.drop_table("media")
