"""Bedrock's model families, as a course allows them: a vendored table of the providers' model ids.

A family is the model ids that start with one of its prefixes (`anthropic.claude` covers
`anthropic.claude-3-haiku-20240307-v1:0` and `anthropic.claude-sonnet-4-…`). The course SCP
(guardrails.py) lets students invoke the families their course lists and no other model; the
usage meter (meter.py) files each model's use under its family. Pure: nothing here calls AWS.

The prefixes follow the model ids Bedrock gives (ListFoundationModels). A provider Bedrock adds
later is in no family: a course that lists families denies its models until it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFamily:
    key: str
    label: str
    prefixes: tuple[str, ...]  # of foundation model ids


FAMILIES: dict[str, ModelFamily] = {
    family.key: family
    for family in (
        ModelFamily("amazon.nova", "Amazon Nova", ("amazon.nova",)),
        ModelFamily("amazon.titan", "Amazon Titan", ("amazon.titan",)),
        ModelFamily("anthropic.claude", "Anthropic Claude", ("anthropic.claude",)),
        ModelFamily("meta.llama", "Meta Llama", ("meta.llama",)),
        ModelFamily("mistral", "Mistral AI (Mistral, Mixtral, Pixtral)", ("mistral.",)),
        ModelFamily("cohere", "Cohere (Command, Embed, Rerank)", ("cohere.",)),
        ModelFamily("ai21", "AI21 Labs Jamba", ("ai21.",)),
        ModelFamily("deepseek", "DeepSeek", ("deepseek.",)),
        ModelFamily("openai", "OpenAI gpt-oss", ("openai.",)),
        ModelFamily("qwen", "Qwen", ("qwen.",)),
        ModelFamily("stability", "Stability AI (images)", ("stability.",)),
        ModelFamily("writer", "Writer Palmyra", ("writer.",)),
        ModelFamily("twelvelabs", "TwelveLabs (video)", ("twelvelabs.",)),
        ModelFamily("luma", "Luma AI Ray (video)", ("luma.",)),
    )
}

# A cross-region inference profile is named after the model it runs, behind where it routes:
# `us.anthropic.claude…`, `global.anthropic.claude…`.
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")


def base_model_id(model: str) -> str:
    """The foundation model an invocation runs: `us.anthropic.claude…` (an inference profile) and
    an ARN are `anthropic.claude…`."""
    model = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model.startswith(prefix) and "." in model[len(prefix) :]:
            return model[len(prefix) :]
    return model


def family_of(model: str) -> str:
    """The key of the family `model` (an id, an inference profile id or an ARN) belongs to, or ""."""
    base = base_model_id(model)
    return next((family.key for family in FAMILIES.values() if base.startswith(family.prefixes)), "")


def unknown_families(keys: list[str]) -> list[str]:
    return sorted(set(keys) - FAMILIES.keys())


def foundation_model_arns(keys: list[str]) -> list[str]:
    """ARN patterns of the families' foundation models, in every region (and in none: a global
    inference profile's model is authorized with an empty region)."""
    return [f"arn:aws:bedrock:*::foundation-model/{prefix}*" for prefix in _prefixes(keys)]


def inference_profile_arns(keys: list[str]) -> list[str]:
    """ARN patterns of the cross-region inference profiles that run the families' models, whatever
    the geography (us., eu., apac., global., …)."""
    return [f"arn:aws:bedrock:*:*:inference-profile/*.{prefix}*" for prefix in _prefixes(keys)]


def _prefixes(keys: list[str]) -> list[str]:
    return sorted(prefix for key in keys for prefix in FAMILIES[key].prefixes)
