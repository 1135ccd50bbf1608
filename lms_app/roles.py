"""LTI's roles as the portal's course roles (pure).

LTI 1.3 names context roles with LIS vocabulary URIs (`…/membership#Instructor`), sub-roles after a
slash (`…/membership/Instructor#TeachingAssistant`), and allows the short form `Instructor`. Canvas
sends TAs as the sub-role, Moodle sends non-editing teachers the same way.
"""

from collections.abc import Iterable

from lti_tool.lti_core.utils import normalize_role

from accounts_app.choices import CourseRole

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
INSTRUCTOR = f"{MEMBERSHIP}#Instructor"
TEACHING_ASSISTANT = f"{MEMBERSHIP}/Instructor#TeachingAssistant"
LEARNER = f"{MEMBERSHIP}#Learner"
MENTOR = f"{MEMBERSHIP}#Mentor"


def portal_role(lti_roles: Iterable[str]) -> CourseRole | None:
    """The portal role for someone with these LTI roles in a course, the strongest first; None for
    roles the portal gives nothing to (observers, institution roles alone)."""
    roles = {normalize_role(role) for role in lti_roles}
    # A teaching assistant is also sent as an instructor by some platforms: the sub-role decides.
    if TEACHING_ASSISTANT in roles:
        return CourseRole.TA
    if INSTRUCTOR in roles:
        return CourseRole.INSTRUCTOR
    if LEARNER in roles:
        return CourseRole.STUDENT
    return None
