from django.db import migrations

# A batch's payload lives from the bridge's insert until the worker counts it (then it is emptied):
# compressing it (pglz, the only method this server build has) cost the bridge's insert 2.5 µs an
# event against 1.0 stored as it is. Out of line still, and the partitions made later copy the
# setting (scoring.partitions: LIKE ... INCLUDING STORAGE).
FORWARD = "ALTER TABLE scoring_batch ALTER COLUMN payload SET STORAGE EXTERNAL"
BACKWARD = "ALTER TABLE scoring_batch ALTER COLUMN payload SET STORAGE EXTENDED"


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0006_counters_lean_foreign_keys"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
