from django.dispatch import Signal

# Sent when someone launches into a portal course from its LMS course, after the launch's changes
# commit: sender is LmsCourseLink, with `link` and `user`. The roster sync listens, so that a
# launch brings the roster up to date.
course_launched = Signal()
