from django.db import migrations

# A counter row is updated by every later batch with events of its (video, type, bucket). With full
# pages each update moves the row to another page and adds an entry to each of the table's indexes
# (its id, the unique key, the bucket); with room left on the page the update stays on it (a
# heap-only tuple) and touches no index. Only pages written from now on keep the room.
TABLES = ("scoring_hourlycounter", "scoring_minutecounter")
FORWARD = [f"ALTER TABLE {table} SET (fillfactor = 70)" for table in TABLES]
BACKWARD = [f"ALTER TABLE {table} RESET (fillfactor)" for table in TABLES]


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0007_batch_payload_uncompressed"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
