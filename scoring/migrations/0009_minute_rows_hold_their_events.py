from typing import Any

from django.conf import settings
from django.db import migrations, models

# Before: every counted event was in its hourly row, and the hour window's events in a minute row too.
# After: an event is in exactly one row (scoring.models.MinuteCounter), so the hourly rows give back
# what the minute rows hold. Stop the bridge and the workers while this runs: a worker of the old
# code would write both rows again.
LOCK = "LOCK TABLE scoring_hourlycounter, scoring_minutecounter IN EXCLUSIVE MODE"
TREND = """
    UPDATE scoring_minutecounter
    SET trend_units = units * power(2::float8, extract(epoch FROM minute - date_trunc('hour', minute, 'UTC')) / %s)
"""
# sign -1: the hourly rows give the minute rows' events back; +1 (reverse): they take them again.
HOURLY = """
    WITH m AS (
        SELECT video_id, event_type_id, date_trunc('hour', minute, 'UTC') AS hour,
               SUM(events) AS events, SUM(units) AS units, SUM(trend_units) AS trend_units
        FROM scoring_minutecounter GROUP BY 1, 2, 3
    )
    INSERT INTO scoring_hourlycounter (video_id, event_type_id, hour, events, units, trend_units)
    SELECT video_id, event_type_id, hour, %(sign)s * events, %(sign)s * units, %(sign)s * trend_units FROM m
    ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
    SET events = scoring_hourlycounter.events + EXCLUDED.events,
        units = scoring_hourlycounter.units + EXCLUDED.units,
        trend_units = scoring_hourlycounter.trend_units + EXCLUDED.trend_units
"""
# A row left with no events holds only the rounding of its float sums.
EMPTY = "DELETE FROM scoring_hourlycounter WHERE events = 0"

# Every counter row with its hour; ``bucket`` is the row's own bucket (its hour, or its minute), which
# the tables' indexes order: a reader of a range of hours also bounds ``bucket`` (scoring.buckets).
VIEW = """
    CREATE VIEW scoring_hourtotal AS
    SELECT video_id, event_type_id, hour, hour AS bucket, events, units, trend_units FROM scoring_hourlycounter
    UNION ALL
    SELECT video_id, event_type_id, date_trunc('hour', minute, 'UTC'), minute, events, units, trend_units
    FROM scoring_minutecounter
"""


def minute_rows_own(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cur:
        cur.execute(LOCK)
        cur.execute(TREND, [settings.RANKING_TRENDING_HALF_LIFE_S])
        cur.execute(HOURLY, {"sign": -1})
        cur.execute(EMPTY)


def minute_rows_share(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cur:
        cur.execute(LOCK)
        cur.execute(HOURLY, {"sign": 1})


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0008_counters_room_for_updates"),
    ]

    operations = [
        migrations.AddField(
            model_name="minutecounter",
            name="trend_units",
            field=models.FloatField(default=0),
        ),
        migrations.RunPython(minute_rows_own, minute_rows_share),
        migrations.RunSQL(VIEW, "DROP VIEW scoring_hourtotal"),
    ]
