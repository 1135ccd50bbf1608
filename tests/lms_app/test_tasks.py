from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from lms_app.models import UsedLaunchNonce
from lms_app.services.launches import NONCE_LIFETIME
from lms_app.tasks import launch_nonces_purge_task


def test_beat_purges_old_launch_nonces(db):
    assert settings.CELERY_BEAT_SCHEDULE["lti-nonces"]["task"] == launch_nonces_purge_task.name
    old = UsedLaunchNonce.objects.create(issuer="https://lms.example.edu", nonce="old")
    UsedLaunchNonce.objects.filter(pk=old.pk).update(used_at=timezone.now() - NONCE_LIFETIME - timedelta(hours=1))

    launch_nonces_purge_task.delay()

    assert not UsedLaunchNonce.objects.exists()
