import pytest

from accounts_app.choices import CourseRole
from lms_app.roles import portal_role

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person"


@pytest.mark.parametrize(
    ("lti_roles", "role"),
    [
        ([f"{MEMBERSHIP}#Instructor"], CourseRole.INSTRUCTOR),
        (["Instructor"], CourseRole.INSTRUCTOR),  # the short form LTI allows
        ([f"{MEMBERSHIP}#Learner"], CourseRole.STUDENT),
        (["Learner"], CourseRole.STUDENT),
        # Canvas's TAs and Moodle's non-editing teachers: the sub-role, sometimes beside Instructor.
        ([f"{MEMBERSHIP}/Instructor#TeachingAssistant"], CourseRole.TA),
        ([f"{MEMBERSHIP}#Instructor", f"{MEMBERSHIP}/Instructor#TeachingAssistant"], CourseRole.TA),
        # The strongest role wins: an instructor who is also enrolled as a learner teaches.
        ([f"{MEMBERSHIP}#Learner", f"{MEMBERSHIP}#Instructor"], CourseRole.INSTRUCTOR),
        ([f"{INSTITUTION}#Administrator", f"{MEMBERSHIP}#Learner"], CourseRole.STUDENT),
    ],
)
def test_lti_roles_map_to_the_portals_course_roles(lti_roles, role):
    assert portal_role(lti_roles) == role


@pytest.mark.parametrize(
    "lti_roles",
    [[], [f"{INSTITUTION}#Administrator"], [f"{MEMBERSHIP}#Mentor"], [f"{MEMBERSHIP}#ContentDeveloper"]],
)
def test_roles_the_portal_gives_nothing_to_map_to_none(lti_roles):
    assert portal_role(lti_roles) is None
