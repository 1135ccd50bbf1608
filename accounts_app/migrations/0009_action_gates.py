from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts_app', '0008_identity_center_users'),
    ]

    operations = [
        migrations.AddField(
            model_name='memberaccount',
            name='freeze_sync_pending',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='handover',
            name='pending_code',
            field=models.TextField(blank=True),
        ),
    ]
