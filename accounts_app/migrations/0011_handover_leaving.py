from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts_app", "0010_bring_existing"),
    ]

    operations = [
        migrations.AddField(
            model_name="awsorganization",
            name="leaving_ou_id",
            field=models.CharField(blank=True, max_length=100, verbose_name="leaving OU id"),
        ),
        migrations.AddField(
            model_name="awsorganization",
            name="leaving_policy_id",
            field=models.CharField(blank=True, max_length=100, verbose_name="leaving OU SCP id"),
        ),
        migrations.AddField(
            model_name="handover",
            name="cancelled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="handover",
            name="cancel_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="handover",
            name="returned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="handover",
            name="status",
            field=models.CharField(
                choices=[
                    ("requested", "Waiting for an instructor"),
                    ("approved", "Approved: in progress"),
                    ("declined", "Declined"),
                    ("completed", "Handed over"),
                    ("cancelled", "Cancelled"),
                ],
                default="requested",
                max_length=20,
            ),
        ),
    ]
