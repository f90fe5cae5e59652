"""end-to-end encryption: device keys, one-time prekeys, DM channels, envelopes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), server_default="", nullable=False),
        sa.Column("identity_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_prekey", sa.LargeBinary(length=32), nullable=True),
        sa.Column("signed_prekey_signature", sa.LargeBinary(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "device_id", name=op.f("pk_devices")),
    )
    op.create_table(
        "one_time_prekeys",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_time_prekeys")),
        sa.UniqueConstraint(
            "user_id",
            "device_id",
            "public_key",
            name=op.f("uq_one_time_prekeys_user_id_device_id_public_key"),
        ),
    )
    op.create_table(
        "channel_recipients",
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_recipients_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_channel_recipients_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", "user_id", name=op.f("pk_channel_recipients")),
    )
    with op.batch_alter_table("channel_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_recipients_user_id"), ["user_id"], unique=False
        )
    op.create_table(
        "dm_pairs",
        sa.Column("low_user_id", sa.BigInteger(), nullable=False),
        sa.Column("high_user_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_dm_pairs_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("low_user_id", "high_user_id", name=op.f("pk_dm_pairs")),
    )
    op.create_table(
        "message_envelopes",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_envelopes_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "message_id", "user_id", "device_id", name=op.f("pk_message_envelopes")
        ),
    )
    with op.batch_alter_table("message_envelopes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_envelopes_user_id_device_id_message_id"),
            ["user_id", "device_id", "message_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("message_envelopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_envelopes_user_id_device_id_message_id"))
    op.drop_table("message_envelopes")
    op.drop_table("dm_pairs")
    with op.batch_alter_table("channel_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_recipients_user_id"))
    op.drop_table("channel_recipients")
    op.drop_table("one_time_prekeys")
    op.drop_table("devices")
