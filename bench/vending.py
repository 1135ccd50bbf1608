"""AWS account vending: how close the portal comes to the fastest vending AWS's quotas allow, and
how many AWS calls it makes per account, with AWS answering well and with the reliability test's
fault mix.

AWS Organizations accepts 0.1 CreateAccount per second (a token bucket holding 3) and 5
creations in progress, and a creation takes about a minute. The benchmark speeds all of it up
SPEEDUP times (the rate, the creation time, and the portal's poll delays, due tick, grace and
reconciler alike), vends ACCOUNTS accounts through tests/support/faulty_aws.py (quotas enforced)
with the portal's real Celery worker, and compares the time taken with the earliest time those
quotas allow, in the same run. Each mode is run RUNS times, each on a fresh AWS; the figures are
medians. Run with `make bench`; `--accounts`, `--speedup` and `--runs` change the run.
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from common import machine, record, setup_django, test_database

AWS_CREATION_SECONDS = 60.0
# The portal's defaults, in seconds at AWS's pace: poll delays, the due tick, the grace of a step,
# the wait before a lost CreateAccount is sent again, and beat's reconciler.
POLL_SECONDS, POLL_MAX_SECONDS = 5.0, 60.0
TICK_SECONDS, GRACE_SECONDS, LOST_REQUEST_SECONDS, RECONCILE_SECONDS = 15.0, 60.0, 120.0, 300.0
# The reliability test's faults (tests/test_reliability.py), on every call.
FAULT_MIX = {"throttle": 0.10, "server_error": 0.03, "lost_response": 0.03, "dropped_connection": 0.01}


def fastest_finish(
    accounts: int,
    rate: float,
    burst: int,
    max_in_progress: int,
    creation_seconds: float,
    *,
    running: Sequence[float] = (),
    tokens: float | None = None,
) -> float:
    """When the last creation ends if each one starts as soon as the token bucket has a token
    and fewer than `max_in_progress` are running (starting any earlier is refused). `running`
    holds when the creations already under way end, and `tokens` what the bucket holds at the
    start (full when None)."""
    slots = [*running, *[0.0] * (max_in_progress - len(running))]  # when each slot is free
    heapq.heapify(slots)
    clock, held = 0.0, float(burst) if tokens is None else tokens
    finish = max(running, default=0.0)
    for _ in range(accounts):
        start = max(clock, heapq.heappop(slots))
        held = min(float(burst), held + (start - clock) * rate)
        if held < 1:
            start += (1 - held) / rate
            held = 1.0
        held -= 1
        clock = start
        heapq.heappush(slots, start + creation_seconds)
        finish = max(finish, start + creation_seconds)
    return finish


@dataclass(frozen=True)
class Run:
    seconds: float  # every account ready
    bound: float
    calls: dict[str, int]  # the worker's, by operation
    reconciler_calls: int
    accounts: int
    violations: list[str]
    duplicates: int  # root emails AWS took more than one CreateAccount for
    faults: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound

    @property
    def calls_per_account(self) -> float:
        return sum(self.calls.values()) / self.accounts


def vend_once(accounts: int, k: float, *, faults: bool, seed: int) -> Run:
    from django.core.management import call_command

    from accounts_app.choices import AccountState
    from accounts_app.models import MemberAccount
    from tests.support.faulty_aws import CreationLimits, Faults
    from tests.support.vending_harness import BEAT_CLIENT, Scenario, vending_stack

    aws = CreationLimits(creation_seconds=AWS_CREATION_SECONDS)
    limits = replace(aws, rate=aws.rate * k, creation_seconds=aws.creation_seconds / k)
    bound = fastest_finish(accounts, limits.rate, limits.burst, limits.max_in_progress, limits.creation_seconds)
    scenario = Scenario(
        students=accounts,
        limits=limits,
        faults=Faults(**FAULT_MIX) if faults else Faults(),
        poll_seconds=POLL_SECONDS / k,
        poll_max_seconds=POLL_MAX_SECONDS / k,
        creation_seconds=AWS_CREATION_SECONDS / k,
        tick_every=TICK_SECONDS / k,
        step_grace_seconds=GRACE_SECONDS / k,
        lost_request_seconds=LOST_REQUEST_SECONDS / k,
        reconcile_every=RECONCILE_SECONDS / k,
        deadline_seconds=5 * bound + 300,
        seed=seed,
    )
    # A fresh database too: the rate is replayed from the accounts' requests, a run's from its own.
    call_command("flush", interactive=False, verbosity=0)
    with vending_stack(scenario) as stack:
        outcome = stack.vend()
        proxy = stack.proxy
        unready = [
            f"{a.account_name}: {a.state} ({a.last_error})"
            for a in MemberAccount.objects.filter(course=outcome.course).exclude(state=AccountState.READY)
        ]
        if outcome.settled is None or unready:
            sys.exit(f"{len(unready)} of {accounts} accounts are not ready:\n" + "\n".join(unready))
        return Run(
            seconds=outcome.settled - outcome.started,
            bound=bound,
            calls=dict(stack.worker_calls()),
            reconciler_calls=sum(proxy.calls_of(BEAT_CLIENT).values()),
            accounts=accounts,
            violations=list(proxy.violations),
            duplicates=sum(n > 1 for n in proxy.creations_per_email().values()),
            faults=sum(proxy.faults_injected.values()),
        )


def per_account_table(calls: dict[str, int], accounts: int) -> str:
    rows = [
        f"| {operation} | {count:,} | {count / accounts:.1f} |"
        for operation, count in sorted(calls.items(), key=lambda item: (-item[1], item[0]))
    ]
    total = sum(calls.values())
    return (
        "| operation | calls | per account |\n|---|---:|---:|\n"
        + "\n".join(rows)
        + f"\n| **all** | **{total:,}** | **{total / accounts:.1f}** |"
    )


def summary_row(label: str, runs: list[Run], k: float) -> str:
    ratios = sorted(run.ratio for run in runs)
    calls = sorted(run.calls_per_account for run in runs)
    seconds = statistics.median(run.seconds for run in runs)
    return (
        f"| {label} | {len(runs)} | {runs[0].bound:.1f} s ({runs[0].bound * k / 60:.1f} min) | "
        f"{seconds:.1f} s ({seconds * k / 60:.1f} min) | **{statistics.median(ratios):.3f}** "
        f"({ratios[0]:.3f}–{ratios[-1]:.3f}) | **{statistics.median(calls):.1f}** ({calls[0]:.1f}–{calls[-1]:.1f}) | "
        f"{sum(len(run.violations) for run in runs)} | {sum(run.duplicates for run in runs)} |"
    )


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.calls_per_account)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--speedup", type=float, default=3.0, help="how many times faster than AWS")
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode (the figures are medians)")
    options = parser.parse_args()
    k, accounts = options.speedup, options.accounts

    setup_django()
    with test_database():
        runs: dict[bool, list[Run]] = {False: [], True: []}
        for n in range(options.runs):
            for faults in (False, True):
                print(f"Run {n + 1} of {options.runs}, {'fault mix' if faults else 'no faults'}…", file=sys.stderr)
                runs[faults].append(vend_once(accounts, k, faults=faults, seed=20261128 + n))
        measured_on = machine()

    clean, faulty = runs[False], runs[True]
    typical = median_run(clean)
    faulty_typical = median_run(faulty)
    limits = f"CreateAccount {0.1 * k:g}/s with a burst of 3, 5 creations in progress, each taking {60 / k:g} s"
    figure = (
        f"Every account ready ÷ fastest the quotas allow, median of {options.runs} runs: "
        f"{statistics.median(r.ratio for r in clean):.3f} without faults (target ≤ 1.05), "
        f"{statistics.median(r.ratio for r in faulty):.3f} under the fault mix (target ≤ 1.3); "
        f"{statistics.median(r.calls_per_account for r in clean):.1f} AWS calls per account without faults "
        "(target ≤ 15)."
    )
    record(
        "vending",
        "AWS account vending",
        f"{accounts} accounts vended by the worker (4 processes) through `tests/support/faulty_aws.py` "
        f"with AWS's quotas sped up {k:g}× ({limits}: a minute at AWS's pace), the portal's settings "
        f"sped up alike (poll delays {POLL_SECONDS / k:.3g}–{POLL_MAX_SECONDS / k:.3g} s, the first "
        f"look at a creation {AWS_CREATION_SECONDS / k:.3g} s after AWS took it, due tick "
        f"{TICK_SECONDS / k:.3g} s, grace {GRACE_SECONDS / k:.3g} s, reconciler every {RECONCILE_SECONDS / k:.3g} s). "
        f"Each mode ran {options.runs} time{'s' if options.runs > 1 else ''}, each on a fresh emulated AWS; the fastest the quotas allow is "
        "computed for the same run (the last creation done if each starts as soon as a token and a "
        "slot allow). The fault mix is the reliability test's, on every call: "
        + ", ".join(f"{int(p * 100)}% {name.replace('_', ' ')}" for name, p in FAULT_MIX.items())
        + ".\n\n"
        "| AWS | runs | fastest the quotas allow | every account ready (median) | ratio, median (range) | "
        "AWS calls per account, median (range) | quota violations | second accounts |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"{summary_row('no faults', clean, k)}\n{summary_row('fault mix', faulty, k)}\n\n"
        f"Faults injected per run under the mix: {statistics.median(r.faults for r in faulty):.0f} (median). "
        "*Quota violations* are CreateAccount requests AWS would have refused for its quotas; *second "
        "accounts* are root emails AWS took a second CreateAccount for (moto would create them).\n\n"
        f"AWS calls of the worker per account, retries included, in the median run without faults "
        f"(beat's reconciler made {typical.reconciler_calls} more):\n\n"
        + per_account_table(typical.calls, accounts)
        + "\n\nThe same under the fault mix (retries included; beat's reconciler made "
        + f"{faulty_typical.reconciler_calls} more):\n\n"
        + per_account_table(faulty_typical.calls, accounts)
        + f"\n\n{figure}",
        measured_on=measured_on,
    )  # printed too, the figure last


if __name__ == "__main__":
    main()
