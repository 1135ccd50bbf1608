"""AWS account vending: how close the portal comes to the fastest vending AWS's quotas allow.

AWS Organizations accepts 0.1 CreateAccount per second (a token bucket holding 3) and 5
creations in progress, and a creation takes about a minute. The benchmark speeds all of it up
SPEEDUP times (the rate, the creation time and the portal's poll delays alike), vends ACCOUNTS
accounts through tests/support/faulty_aws.py (quotas enforced, no faults) with the portal's real
Celery worker, and compares the time taken with the earliest time those quotas allow. Run with
`make bench`; `--accounts` and `--speedup` change the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace

from common import machine, record, setup_django, test_database

AWS_CREATION_SECONDS = 60.0
# The portal's default poll delays and beat's vending-queue tick, in seconds at AWS's pace.
POLL_SECONDS, POLL_MAX_SECONDS, BEAT_SECONDS = 5.0, 60.0, 60.0


def fastest_finish(accounts: int, rate: float, burst: int, max_in_progress: int, creation_seconds: float) -> float:
    """When the last creation ends if each one starts as soon as the token bucket has a token
    and fewer than `max_in_progress` are running (starting any earlier is refused)."""
    starts: list[float] = []
    clock, tokens = 0.0, float(burst)
    for i in range(accounts):
        start = clock
        if i >= max_in_progress:
            start = max(start, starts[i - max_in_progress] + creation_seconds)
        tokens = min(float(burst), tokens + (start - clock) * rate)
        if tokens < 1:
            start += (1 - tokens) / rate
            tokens = 1.0
        tokens -= 1
        clock = start
        starts.append(start)
    return starts[-1] + creation_seconds


def per_account_table(calls: dict[str, int], accounts: int) -> str:
    rows = [
        f"| {operation} | {count:,} | {count / accounts:.1f} |"
        for operation, count in sorted(calls.items(), key=lambda item: -item[1])
    ]
    total = sum(calls.values())
    return (
        "| operation | calls | per account |\n|---|---:|---:|\n"
        + "\n".join(rows)
        + f"\n| **all** | **{total:,}** | **{total / accounts:.1f}** |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--speedup", type=float, default=3.0, help="how many times faster than AWS")
    options = parser.parse_args()
    k, accounts = options.speedup, options.accounts

    setup_django()
    with test_database():
        from accounts_app.choices import AccountState
        from accounts_app.models import MemberAccount
        from tests.support.faulty_aws import CreationLimits
        from tests.support.vending_harness import (
            BEAT_CLIENT,
            WORKER_CLIENT,
            Scenario,
            vending_stack,
        )

        aws = CreationLimits(creation_seconds=AWS_CREATION_SECONDS)
        limits = replace(aws, rate=aws.rate * k, creation_seconds=aws.creation_seconds / k)
        bound = fastest_finish(accounts, limits.rate, limits.burst, limits.max_in_progress, limits.creation_seconds)
        scenario = Scenario(
            students=accounts,
            limits=limits,
            poll_seconds=POLL_SECONDS / k,
            poll_max_seconds=POLL_MAX_SECONDS / k,
            reconcile_every=BEAT_SECONDS / k,
            deadline_seconds=3 * bound + 120,
        )
        print(f"Vending {accounts} accounts, {k:g}× AWS's pace; the quotas allow {bound:.1f} s.", file=sys.stderr)
        with vending_stack(scenario) as stack:
            outcome = stack.vend()
            proxy = stack.proxy
            worker_calls = dict(proxy.calls_of(WORKER_CLIENT))
            beat_calls = sum(proxy.calls_of(BEAT_CLIENT).values())
            unready = [
                f"{a.account_name}: {a.state} ({a.last_error})"
                for a in MemberAccount.objects.filter(course=outcome.course).exclude(state=AccountState.READY)
            ]
        measured_on = machine()

    if outcome.settled is None or unready:
        sys.exit(f"{len(unready)} of {accounts} accounts are not ready:\n" + "\n".join(unready))
    total = outcome.settled - outcome.started
    created = max(c.reported_at or c.done_at for c in proxy.creations) - outcome.started
    poll_lags = [c.reported_at - c.done_at for c in proxy.creations if c.reported_at is not None]
    answer_times = [c.answered_at - c.started for c in proxy.creations if c.answered_at is not None]
    violations = "; ".join(proxy.violations) or "none"
    record(
        "vending",
        "AWS account vending",
        f"{accounts} accounts vended by the worker (4 processes) through `tests/support/faulty_aws.py` "
        f"with AWS's quotas sped up {k:g}×: CreateAccount {limits.rate:g}/s with a burst of "
        f"{limits.burst}, {limits.max_in_progress} creations in progress, each taking "
        f"{limits.creation_seconds:g} s (a minute at AWS's pace); poll delays "
        f"{scenario.poll_seconds:.3g}–{scenario.poll_max_seconds:.3g} s; no faults.\n\n"
        "| | seconds | at AWS's pace |\n|---|---:|---:|\n"
        f"| fastest the quotas allow (last creation done) | {bound:.1f} | {bound * k / 60:.1f} min |\n"
        f"| portal: every creation seen done | {created:.1f} | {created * k / 60:.1f} min |\n"
        f"| portal: every account ready | {total:.1f} | {total * k / 60:.1f} min |\n\n"
        f"**Ratio {total / bound:.2f}** (every account ready ÷ fastest possible; target ≤ 1.2). "
        f"Quota violations seen by the proxy: {violations}.\n\n"
        f"From AWS finishing a creation to the portal seeing it: {statistics.mean(poll_lags):.1f} s on "
        f"average, {max(poll_lags):.1f} s at most. The emulator takes {statistics.mean(answer_times):.1f} s "
        "to answer a CreateAccount (moto sets up the new account's IAM), during which the "
        "dispatcher waits before sending the next one.\n\n"
        "AWS calls of the worker per account, retries included (the reconciler, run every "
        f"{scenario.reconcile_every:g} s in place of beat, made {beat_calls} more):\n\n"
        + per_account_table(worker_calls, accounts),
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
