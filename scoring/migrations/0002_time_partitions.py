"""SeenEvent and Batch become range-partitioned tables that expire by dropping partitions.

Django keeps the models (ORM reads, admin) as they were declared; the tables are
written here because Django cannot declare partitioning, and a partitioned table's
primary key must include its partition key. No partitions are made here: they are
created on demand and ahead by scoring/partitions.py.
"""

import django.utils.timezone
from django.db import migrations, models

FORWARD = """
DROP TABLE scoring_seenevent;
CREATE TABLE scoring_seenevent (
    key uuid NOT NULL,
    period date NOT NULL,
    PRIMARY KEY (key, period)
) PARTITION BY RANGE (period);

DROP TABLE scoring_batch;
CREATE TABLE scoring_batch (
    id uuid NOT NULL,
    source varchar(16) NOT NULL,
    received_at timestamp with time zone NOT NULL,
    payload jsonb NOT NULL,
    processed_at timestamp with time zone NULL,
    xid bigint NULL,
    deltas jsonb NULL,
    applied_at timestamp with time zone NULL,
    counted integer NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX scoring_batch_received_at_9e3de185 ON scoring_batch (received_at);
CREATE INDEX scoring_batch_xid_954ae089 ON scoring_batch (xid);
CREATE INDEX batch_unprocessed ON scoring_batch (processed_at) WHERE processed_at IS NULL;
CREATE INDEX batch_unapplied ON scoring_batch (processed_at) WHERE applied_at IS NULL AND processed_at IS NOT NULL;
"""

# The tables of 0001_initial, empty.
BACKWARD = """
DROP TABLE scoring_seenevent;
CREATE TABLE scoring_seenevent (key uuid NOT NULL PRIMARY KEY, seen_at timestamp with time zone NOT NULL);
CREATE INDEX scoring_seenevent_seen_at_b9814c97 ON scoring_seenevent (seen_at);

DROP TABLE scoring_batch;
CREATE TABLE scoring_batch (
    id uuid NOT NULL PRIMARY KEY,
    source varchar(16) NOT NULL,
    received_at timestamp with time zone NOT NULL,
    payload jsonb NOT NULL,
    processed_at timestamp with time zone NULL,
    xid bigint NULL,
    deltas jsonb NULL,
    applied_at timestamp with time zone NULL,
    counted integer NOT NULL
);
CREATE INDEX scoring_batch_received_at_9e3de185 ON scoring_batch (received_at);
CREATE INDEX scoring_batch_xid_954ae089 ON scoring_batch (xid);
CREATE INDEX batch_unprocessed ON scoring_batch (processed_at) WHERE processed_at IS NULL;
CREATE INDEX batch_unapplied ON scoring_batch (processed_at) WHERE applied_at IS NULL AND processed_at IS NOT NULL;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="seenevent", name="seen_at"),
                migrations.AddField(
                    model_name="seenevent",
                    name="period",
                    field=models.DateField(
                        help_text="First day of the dedupe period the key was claimed in: its partition."
                    ),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="batch",
                    name="received_at",
                    field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False),
                ),
            ],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        ),
    ]
