"""The course SCP's Bedrock model families (portal/aws/guardrails.py), decided by the IAM policy
evaluator as tests/portal/aws/test_scp_semantics.py decides the rest: the SCPs placed as AWS places them, the
student's own policies allowing everything.

What AWS authorizes for one Bedrock call (Bedrock's user guide, "Prerequisites for inference
profiles" and the API reference): Converse and StartAsyncInvoke as bedrock:InvokeModel, ConverseStream
as bedrock:InvokeModelWithResponseStream, on the model the call names; through a cross-region
inference profile, on the profile in the region called AND on the foundation model in the region
the request is routed to (aws:RequestedRegion that region, bedrock:InferenceProfileArn the
profile); through an application inference profile, on it and on what it copies. Each test asks
every authorization of the call and expects the call's outcome from all of them.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from accounts_app.services.courses import NEW_COURSE_INSTANCE_FAMILIES, NEW_COURSE_SERVICES
from accounts_app.services.guardrails import course_profile, portal_role
from portal.aws.bedrock_models import FAMILIES
from portal.aws.guardrails import BEDROCK_INVOKE_ACTIONS, SCP_MAX_CHARACTERS, course_policy
from tests.portal.aws.test_scp_semantics import ACCOUNT, STUDENT, course, decide, hierarchy
from tests.support.policy_eval import ALLOWED, EXPLICITLY_DENIED, describe_actions

SOURCE, DESTINATION = "us-east-1", "us-west-2"
COURSE_REGIONS = [SOURCE, "us-east-2", DESTINATION]  # where the us. profiles route
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
NOVA = "amazon.nova-lite-v1:0"
# The actions of InvokeModel, Converse, StartAsyncInvoke; InvokeModelWithResponseStream, ConverseStream.
RUNTIME_ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]


def bedrock_course(families: list[str], *, services=("bedrock", "s3"), regions=COURSE_REGIONS):
    return hierarchy(
        course(allowed_services=list(services), allowed_regions=list(regions), bedrock_model_families=families)
    )


def foundation_model(model: str, region: str = SOURCE) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


def inference_profile(model: str, geography: str = "us") -> str:
    return f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:inference-profile/{geography}.{model}"


def invoke(scps, action: str, model: str) -> str:
    """A call naming the foundation model, in the region it runs."""
    return decide(STUDENT, action, foundation_model(model), region=SOURCE, scps=scps)


def invoke_through_profile(scps, action: str, model: str, *, destination: str = DESTINATION) -> str:
    """A call naming a us. inference profile: the profile is authorized in the source region, the
    model in the region the request is routed to. The call is allowed only if both are."""
    profile = inference_profile(model)
    on_profile = decide(STUDENT, action, profile, region=SOURCE, scps=scps)
    on_model = decide(
        STUDENT,
        action,
        foundation_model(model, destination),
        region=destination,
        scps=scps,
        bedrock__InferenceProfileArn=profile,
    )
    return ALLOWED if on_profile == on_model == ALLOWED else EXPLICITLY_DENIED


def test_every_action_that_runs_a_model_is_one_aws_has():
    """A misspelt action in a Deny denies nothing, silently; Converse and ConverseStream are no IAM
    actions at all (AWS authorizes them as InvokeModel and InvokeModelWithResponseStream)."""
    described = describe_actions([*BEDROCK_INVOKE_ACTIONS, "bedrock:Converse", "bedrock:ConverseStream"])
    assert [action for action in BEDROCK_INVOKE_ACTIONS if described[action] is None] == []
    assert described["bedrock:Converse"] is None and described["bedrock:ConverseStream"] is None


@pytest.mark.parametrize("action", RUNTIME_ACTIONS)
@pytest.mark.parametrize(("model", "expected"), [(CLAUDE, ALLOWED), (NOVA, ALLOWED), (LLAMA, EXPLICITLY_DENIED)])
def test_students_run_the_models_of_the_courses_families_only(action, model, expected):
    scps = bedrock_course(["amazon.nova", "anthropic.claude"])
    assert invoke(scps, action, model) == expected


@pytest.mark.parametrize("action", RUNTIME_ACTIONS)
@pytest.mark.parametrize(("model", "expected"), [(CLAUDE, ALLOWED), (LLAMA, EXPLICITLY_DENIED)])
def test_an_inference_profile_runs_only_a_model_of_the_courses_families(action, model, expected):
    scps = bedrock_course(["anthropic.claude"])
    assert invoke_through_profile(scps, action, model) == expected


@pytest.mark.parametrize("geography", ["us", "eu", "apac", "global"])
def test_the_profile_of_an_allowed_family_passes_the_family_fence_whatever_its_geography(geography):
    scps = bedrock_course(["anthropic.claude"])
    profile = inference_profile(CLAUDE, geography)
    assert decide(STUDENT, "bedrock:InvokeModel", profile, region=SOURCE, scps=scps) == ALLOWED
    other = inference_profile(LLAMA, geography)
    assert decide(STUDENT, "bedrock:InvokeModel", other, region=SOURCE, scps=scps) == EXPLICITLY_DENIED


def test_a_profile_named_for_an_allowed_family_still_needs_its_model_allowed():
    """The model is authorized on its own: the profile's name is not what lets it through."""
    scps = bedrock_course(["anthropic.claude"])
    decided = decide(
        STUDENT,
        "bedrock:InvokeModel",
        foundation_model(LLAMA, DESTINATION),
        region=DESTINATION,
        scps=scps,
        bedrock__InferenceProfileArn=inference_profile(CLAUDE),
    )
    assert decided == EXPLICITLY_DENIED


@pytest.mark.parametrize("model", [CLAUDE, LLAMA, NOVA, "mistral.mistral-7b-instruct-v0:2"])
def test_no_family_listed_lets_every_model_run(model):
    scps = bedrock_course([])
    for action in RUNTIME_ACTIONS:
        assert invoke(scps, action, model) == ALLOWED
        assert invoke_through_profile(scps, action, model) == ALLOWED


def test_a_course_without_bedrock_runs_no_model_whatever_its_families():
    scps = bedrock_course(["anthropic.claude"], services=("s3",))
    assert invoke(scps, "bedrock:InvokeModel", CLAUDE) == EXPLICITLY_DENIED
    assert invoke(bedrock_course([], services=("s3",)), "bedrock:InvokeModel", CLAUDE) == EXPLICITLY_DENIED


@pytest.mark.parametrize(("model", "expected"), [(CLAUDE, ALLOWED), (LLAMA, EXPLICITLY_DENIED)])
def test_batch_inference_keeps_to_the_families(model, expected):
    """CreateModelInvocationJob is authorized on the job and on the model it runs."""
    scps = bedrock_course(["anthropic.claude"])
    job = f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:model-invocation-job/lab-batch"
    on_job = decide(STUDENT, "bedrock:CreateModelInvocationJob", job, region=SOURCE, scps=scps)
    on_model = invoke(scps, "bedrock:CreateModelInvocationJob", model)
    assert on_job == ALLOWED
    assert on_model == expected


def test_an_asynchronous_invocation_is_judged_by_its_model():
    scps = bedrock_course(["anthropic.claude"])
    started = f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:async-invoke/0123abcd"
    assert decide(STUDENT, "bedrock:InvokeModel", started, region=SOURCE, scps=scps) == ALLOWED
    assert invoke(scps, "bedrock:InvokeModel", NOVA) == EXPLICITLY_DENIED


def test_an_application_inference_profile_is_judged_by_what_it_copies():
    """A student's own profile (for cost tags) passes; AWS authorizes the model behind it too."""
    scps = bedrock_course(["anthropic.claude"])
    own = f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:application-inference-profile/a1b2c3d4e5f6"
    assert decide(STUDENT, "bedrock:InvokeModel", own, region=SOURCE, scps=scps) == ALLOWED
    assert invoke(scps, "bedrock:InvokeModel", LLAMA) == EXPLICITLY_DENIED


@pytest.mark.parametrize(
    "resource",
    [
        f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:imported-model/a1b2c3d4e5f6",
        f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:custom-model-deployment/a1b2c3d4e5f6",
        f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:default-prompt-router/anthropic.claude:1",
        f"arn:aws:bedrock:{SOURCE}:{ACCOUNT}:marketplace/model-endpoint/all-access",
    ],
)
def test_models_of_no_family_are_denied_where_families_are_listed(resource):
    assert decide(
        STUDENT, "bedrock:InvokeModel", resource, region=SOURCE, scps=bedrock_course(["anthropic.claude"])
    ) == (EXPLICITLY_DENIED)
    assert decide(STUDENT, "bedrock:InvokeModel", resource, region=SOURCE, scps=bedrock_course([])) == ALLOWED


def test_a_profile_routed_outside_the_courses_regions_is_refused_by_the_region_fence():
    """Not the family fence's doing: the model is authorized in the region the profile routes to,
    which the course must allow (every destination of the profiles its students use)."""
    scps = bedrock_course(["anthropic.claude"], regions=[SOURCE])
    assert invoke(scps, "bedrock:InvokeModel", CLAUDE) == ALLOWED
    assert invoke_through_profile(scps, "bedrock:InvokeModel", CLAUDE) == EXPLICITLY_DENIED


def test_every_family_fits_in_the_scp_of_a_course_in_every_school_region():
    """The worst case of the families' statement, next to a course in each of the school's regions
    with the new-course services, Bedrock and SageMaker (whose statement is the other optional one)."""
    widest = course(
        allowed_regions=list(settings.PORTAL_AWS_SCHOOL_REGIONS),
        allowed_services=[*NEW_COURSE_SERVICES, "bedrock", "sagemaker"],
        allowed_instance_families=NEW_COURSE_INSTANCE_FAMILIES,
        bedrock_model_families=list(FAMILIES),
    )
    document = course_policy(course_profile(widest), portal_role=portal_role())
    assert len(json.dumps(document, separators=(",", ":"))) <= SCP_MAX_CHARACTERS
