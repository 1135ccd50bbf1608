"""Thin Celery tasks: ids in, one service call (accounts_app/tasks.py explains the pattern)."""

from typing import Any

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

# An LMS down or busy (no answer, 5xx, 429) is asked again with jittered exponential backoff, at
# most an hour apart (below the broker's two-hour visibility timeout), 8 times: for a few hours.
# The next launch or night asks again anyway. A refusal (401, 403, 404) is not retried.
LMS_RETRY_BACKOFF = 60
LMS_RETRY_BACKOFF_MAX = 60 * 60
LMS_MAX_RETRIES = 8
LMS_TASK: dict[str, Any] = {"bind": True, "max_retries": LMS_MAX_RETRIES}


@shared_task(**LMS_TASK)
def lms_roster_sync_task(self, fetch_id: int) -> None:
    from lms_app.services.roster_sync import LmsUnavailable, lms_roster_sync

    try:
        lms_roster_sync(fetch_id=fetch_id, final=self.request.retries >= self.max_retries)
    except LmsUnavailable as unavailable:
        countdown = get_exponential_backoff_interval(
            LMS_RETRY_BACKOFF, self.request.retries, LMS_RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise self.retry(exc=unavailable, countdown=countdown) from unavailable


@shared_task
def lms_rosters_sync_nightly_task() -> int:
    from lms_app.services.roster_sync import lms_rosters_sync_nightly

    return lms_rosters_sync_nightly()


@shared_task
def launch_nonces_purge_task() -> None:
    from lms_app.services.launches import launch_nonces_purge

    launch_nonces_purge()
