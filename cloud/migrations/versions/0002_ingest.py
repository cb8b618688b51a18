"""Ingest: gateway status (last seen, diagnostics), gateway events (alert candidates) and the
time-series mirror's queue of readings not yet mirrored.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:46:44.718479
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tsdb_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reading_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tsdb_pending")),
    )
    op.create_table(
        "gateway_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_key", sa.String(length=128), nullable=True),
        sa.Column("reading_id", sa.String(length=128), nullable=True),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("message_zh", sa.String(length=2000), nullable=False),
        sa.Column("message_en", sa.String(length=2000), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_gateway_events_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_gateway_events_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_gateway_events_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_events")),
        sa.UniqueConstraint(
            "gateway_id", "event_id", name=op.f("uq_gateway_events_gateway_id_event_id")
        ),
    )
    with op.batch_alter_table("gateway_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gateway_events_household_time", ["household_id", "occurred_at"], unique=False
        )

    op.create_table(
        "gateway_status",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("software_version", sa.String(length=64), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=True),
        sa.Column("outbox", sa.JSON(), nullable=True),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_gateway_status_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_gateway_status")),
    )


def downgrade() -> None:
    op.drop_table("gateway_status")
    with op.batch_alter_table("gateway_events", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_events_household_time")

    op.drop_table("gateway_events")
    op.drop_table("tsdb_pending")
