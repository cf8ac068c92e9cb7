from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("rankings", "0001_initial")]
    operations = [
        migrations.RunSQL(
            "INSERT INTO rankings_windowstate (id, current_hour) VALUES (1, date_trunc('hour', now())) "
            "ON CONFLICT (id) DO NOTHING",
            "DELETE FROM rankings_windowstate WHERE id = 1",
        )
    ]
