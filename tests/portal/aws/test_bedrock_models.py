"""Bedrock's model families (portal/aws/bedrock_models.py): which family a model id, an inference
profile id or an ARN belongs to."""

from __future__ import annotations

import pytest

from portal.aws import price_table
from portal.aws.bedrock_models import FAMILIES, base_model_id, family_of, unknown_families


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude"),
        ("apac.amazon.nova-lite-v1:0", "amazon.nova"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan"),
        ("eu.meta.llama3-2-1b-instruct-v1:0", "meta.llama"),
        ("mistral.mixtral-8x7b-instruct-v0:1", "mistral"),
        ("arn:aws:bedrock:us-east-1::foundation-model/cohere.command-r-v1:0", "cohere"),
        ("arn:aws:bedrock:us-east-1:222233334444:application-inference-profile/a1b2c3d4e5f6", ""),
        ("acme.frontier-v1:0", ""),
        ("amazon.rerank-v1:0", ""),
    ],
)
def test_a_model_belongs_to_the_family_its_id_starts_with(model, family):
    assert family_of(model) == family


def test_an_inference_profile_is_the_model_it_runs():
    assert base_model_id("us-gov.anthropic.claude-3-haiku-20240307-v1:0") == "anthropic.claude-3-haiku-20240307-v1:0"
    # A model id that merely starts like a geography is not a profile.
    assert base_model_id("us.example") == "us.example"


def test_no_model_id_is_in_two_families():
    prefixes = [prefix for family in FAMILIES.values() for prefix in family.prefixes]
    assert [(a, b) for a in prefixes for b in prefixes if a != b and a.startswith(b)] == []


def test_every_model_the_price_table_prices_has_a_family():
    """The families a course lists cover the models the meter can price."""
    models = [rate.split("/", 1)[1] for rate in price_table.US_EAST_1 if rate.startswith("bedrock-input/")]
    assert models and [model for model in models if not family_of(model)] == []


def test_unknown_keys_are_named():
    assert unknown_families(["anthropic.claude", "openai.gpt5", "acme"]) == ["acme", "openai.gpt5"]
