"""What lms_app does when something happens elsewhere in the portal."""

from django.dispatch import receiver

from lms_app.models import LmsCourseLink
from lms_app.services.roster_sync import lms_roster_sync_on_launch
from lms_app.signals import course_launched


@receiver(course_launched, sender=LmsCourseLink)
def sync_roster_after_launch(sender: type[LmsCourseLink], link: LmsCourseLink, **kwargs: object) -> None:
    lms_roster_sync_on_launch(link=link)
