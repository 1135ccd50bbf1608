from decimal import Decimal

import pytest

from tests.factories import CourseFactory


@pytest.fixture
def course(db):
    """A course with a budget of $100 a student, its accounts' costs to sync and read."""
    return CourseFactory(code="cs101", name="Cloud Computing", budget_per_student=Decimal("100.00"))
