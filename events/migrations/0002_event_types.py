from django.db import migrations

# The original design's weights, plus watch (counted as completion ratio).
EVENT_TYPES = [
    ("view", 1.0, 1800, "A play started; one per user per video per 30 minutes."),
    ("like", 5.0, 0, "A like."),
    ("comment", 10.0, 0, "A comment posted."),
    ("share", 50.0, 0, "A share to another app or person."),
    ("watch", 20.0, 0, "Watch time: counts min(watch_seconds / duration, 1) units."),
]


def create(apps, schema_editor):
    EventType = apps.get_model("events", "EventType")
    for name, weight, window, description in EVENT_TYPES:
        EventType.objects.update_or_create(
            name=name, defaults={"weight": weight, "dedupe_window_seconds": window, "description": description}
        )


def remove(apps, schema_editor):
    apps.get_model("events", "EventType").objects.filter(name__in=[t[0] for t in EVENT_TYPES]).delete()


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
