# The covering index of the batch worker's per-video lookup (videos.selectors.video_facts).
# Built concurrently: a live catalogue keeps taking writes while a million rows are indexed.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('videos', '0002_admin_search_indexes'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='video',
            index=models.Index(fields=['id'], include=['duration_seconds', 'status', 'category'], name='video_facts'),
        ),
    ]
