from celery import shared_task

from lms_app.services.launches import launch_nonces_purge


@shared_task
def launch_nonces_purge_task() -> None:
    launch_nonces_purge()
