"""Vending a course with two Celery worker processes, as on two machines, against one broker and one
database, through an AWS that enforces its CreateAccount quotas and answers with the reliability
test's faults (tests/support/vending_harness.py). The vending queue counts the quotas from the
database under a PostgreSQL advisory lock, not in one process: whichever worker runs it, AWS is
never asked for more than its quotas allow, and no student gets a second account.

Only outcomes are asserted; timings are bench/vending.py's business.
"""

from collections import Counter

import pytest

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount
from tests.support.faulty_aws import CreationLimits, Faults
from tests.support.vending_harness import Scenario, vending_stack, worker_client

STUDENTS = 15
SCENARIO = Scenario(
    students=STUDENTS,
    # AWS's in-progress quota and burst, its rate raised to 1/s and a creation taking 10 s, so that
    # the test ends in a couple of minutes on two cores.
    limits=CreationLimits(rate=1.0, burst=3, max_in_progress=5, creation_seconds=10),
    faults=Faults(throttle=0.10, server_error=0.03, lost_response=0.03, dropped_connection=0.01),
    poll_seconds=1,
    poll_max_seconds=5,
    tick_every=1,
    step_grace_seconds=10,
    lost_request_seconds=20,
    reconcile_every=30,
    deadline_seconds=10 * 60,
    seed=20261206,
    workers=2,
    worker_concurrency=2,
)


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_two_workers_keep_to_the_quotas_and_give_each_student_one_account():
    with vending_stack(SCENARIO) as stack:
        outcome = stack.vend()
        accounts = list(MemberAccount.objects.filter(course=outcome.course))
        in_aws = stack.moto_accounts()
        proxy = stack.proxy
        calls_by_worker = [sum(proxy.calls_of(worker_client(n)).values()) for n in range(SCENARIO.workers)]
        worker_log = stack.worker_log_tail()

    states = Counter(account.state for account in accounts)
    assert states == {AccountState.READY: STUDENTS}, f"states: {dict(states)}\n{worker_log}"
    assert all(calls_by_worker), f"both workers took part: {calls_by_worker}"
    assert proxy.violations == [], "the quotas held, whichever worker ran the queue"

    emails_in_aws = Counter(email.lower() for _, email in in_aws)
    assert {account.root_email: emails_in_aws[account.root_email.lower()] for account in accounts} == {
        account.root_email: 1 for account in accounts
    }, "each student's root email is in the organization exactly once"
    creations = proxy.creations_per_email()
    assert {account.root_email: creations[account.root_email.lower()] for account in accounts} == {
        account.root_email: 1 for account in accounts
    }, "AWS took one CreateAccount per root email"
    assert len({account.aws_account_id for account in accounts}) == STUDENTS
