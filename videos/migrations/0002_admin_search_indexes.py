# The admin at a million videos (docs/admin.md): trigram index for the title search,
# B-tree index for the date hierarchy. Built concurrently: a live catalogue keeps
# taking writes while a million rows are indexed.

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('videos', '0001_initial'),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrently(
            model_name='video',
            index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper('title'), name='gin_trgm_ops'), name='video_title_upper_trgm'),
        ),
        AddIndexConcurrently(
            model_name='video',
            index=models.Index(fields=['published_at'], name='video_published_at'),
        ),
        # Statistics of the indexed expression UPPER(title): without them the planner guesses
        # how many titles match a search and may walk another index through every row.
        migrations.RunSQL('ANALYZE videos_video', reverse_sql=migrations.RunSQL.noop),
    ]
