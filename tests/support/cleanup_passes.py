"""The cleanup's passes over a member account, as its caller (accounts_app/services/cleanup.py)
makes them, and what each pass did."""

from __future__ import annotations

from portal.aws import cleanup
from portal.aws.cleanup import Resource
from portal.aws.errors import AwsError
from tests.support.member_resources import REGION


def listed(member: str, kind: str, regions=(REGION,)) -> dict[str, str]:
    """The inventory's resources of one kind: id → label."""
    return {r.id: r.label for r in cleanup.inventory(member, regions) if r.kind == kind}


def clean_in_passes(member: str, regions, *, max_passes: int = 5) -> list[dict[Resource, AwsError | None]]:
    """What the caller does: list, delete each, list again, until nothing is left or a pass
    deletes nothing of what stays listed. Returns each pass's outcome, resource by resource
    (None: deleted, or its deletion started)."""
    passes: list[dict[Resource, AwsError | None]] = []
    remaining = cleanup.inventory(member, regions)
    while remaining and len(passes) < max_passes:
        outcome: dict[Resource, AwsError | None] = {}
        for resource in remaining:
            try:
                cleanup.delete(member, resource)
                outcome[resource] = None
            except AwsError as error:
                outcome[resource] = error
        passes.append(outcome)
        left = cleanup.inventory(member, regions)
        if _places(left) == _places(remaining) and None not in outcome.values():
            break
        remaining = left
    return passes


def _places(resources: list[Resource]) -> set[tuple[str, str, str]]:
    return {(r.region, r.kind, r.id) for r in resources}


def pass_errors(passes: list[dict[Resource, AwsError | None]]) -> list[dict[str, str | None]]:
    """Each pass's outcome as kind/id → AWS's error code (None: deleted)."""
    return [{f"{r.kind} {r.id}": error.code if error else None for r, error in outcome.items()} for outcome in passes]
