"""A course's Bedrock model families reach its SCP (accounts_app/services/guardrails.py): an edit
of them re-applies the course SCP in AWS (moto), as an edit of its services or regions does."""

from __future__ import annotations

import json

import pytest

from accounts_app.models import Course
from accounts_app.services.courses import course_update
from accounts_app.services.guardrails import course_guardrails_apply, course_profile, portal_role
from portal.aws.guardrails import course_policy

pytestmark = pytest.mark.django_db(transaction=True)


def scp_content(aws, policy_id: str) -> dict:
    return json.loads(aws.client("organizations").describe_policy(PolicyId=policy_id)["Policy"]["Content"])


def statement(document: dict, sid: str) -> dict | None:
    return next((s for s in document["Statement"] if s.get("Sid") == sid), None)


def test_editing_the_model_families_reapplies_the_course_scp(personas, aws):
    course = Course.objects.get(pk=personas.course.pk)
    course.allowed_services = ["bedrock", "s3"]
    course.save()
    course = course_guardrails_apply(actor=None, course=course)
    assert statement(scp_content(aws, course.aws_scp_id), "OnlyAllowedBedrockModels") is None

    course_update(actor=personas.instructor, course=course, changes={"bedrock_model_families": ["anthropic.claude"]})

    course.refresh_from_db()
    applied = scp_content(aws, course.aws_scp_id)
    assert applied == course_policy(course_profile(course), portal_role=portal_role())
    fence = statement(applied, "OnlyAllowedBedrockModels")
    assert fence is not None and "arn:aws:bedrock:*::foundation-model/anthropic.claude*" in fence["NotResource"]
