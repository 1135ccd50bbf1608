"""Vending a whole course against an unreliable AWS: throttling, 5xx errors, lost answers and
dropped connections on every call, creations that take a while, and AWS's CreateAccount quotas
enforced. The portal's real Celery worker does the work (tests/support/vending_harness.py).

Only outcomes are asserted: every student has exactly one account, nothing is left half done,
and AWS never had to refuse a creation for the quotas. Timings are bench/vending.py's business.
"""

from collections import Counter

import pytest

from accounts_app.choices import AccountState
from accounts_app.lifecycle import WORKING_STATES
from accounts_app.models import MemberAccount
from tests.support.faulty_aws import CreationLimits, Fault, Faults
from tests.support.vending_harness import Scenario, vending_stack

STUDENTS = 40
SCENARIO = Scenario(
    students=STUDENTS,
    # AWS allows 0.1 CreateAccount per second (burst 3) and 5 creations in progress, and a
    # creation takes minutes. The rate is raised to 1/s and a creation takes 20 s, so that the
    # test ends in about five minutes on two cores; the in-progress quota is AWS's own.
    limits=CreationLimits(rate=1.0, burst=3, max_in_progress=5, creation_seconds=20),
    faults=Faults(throttle=0.10, server_error=0.03, lost_response=0.03, dropped_connection=0.01),
    poll_seconds=1,
    poll_max_seconds=5,
    reconcile_every=5,
    deadline_seconds=15 * 60,
    seed=20261128,
)


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_every_student_gets_exactly_one_account_despite_an_unreliable_aws():
    with vending_stack(SCENARIO) as stack:
        outcome = stack.vend()
        accounts = list(MemberAccount.objects.filter(course=outcome.course))
        in_aws = stack.moto_accounts()
        proxy = stack.proxy
        worker_log = stack.worker_log_tail()

    states = Counter(account.state for account in accounts)
    report = (
        f"states: {dict(states)}\nlast errors: {[a.last_error for a in accounts if a.last_error][:5]}\n{worker_log}"
    )
    assert set(proxy.faults_injected) == set(Fault), "every kind of fault was injected"
    assert states == {AccountState.READY: STUDENTS}, report
    assert not [account for account in accounts if account.state in WORKING_STATES]

    emails_in_aws = Counter(email.lower() for _, email in in_aws)
    assert {account.root_email: emails_in_aws[account.root_email.lower()] for account in accounts} == {
        account.root_email: 1 for account in accounts
    }, "each student's root email is in the organization exactly once"
    account_ids = {account.aws_account_id for account in accounts}
    assert len(account_ids) == STUDENTS
    assert account_ids <= {account_id for account_id, _ in in_aws}

    assert proxy.violations == [], "the portal kept to AWS's CreateAccount quotas"
