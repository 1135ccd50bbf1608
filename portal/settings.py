"""Settings for the Classroom Cloud Portal.

Everything comes from the environment. Development (the default) runs with no services at all:
SQLite, a file-system Celery broker and the local AWS emulator. Production (`PORTAL_ENV=production`)
refuses to start until the secrets and real services are given.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))

PORTAL_ENV = os.environ.get("PORTAL_ENV", "development")
if PORTAL_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("PORTAL_ENV must be 'development' or 'production'.")
PRODUCTION = PORTAL_ENV == "production"


def env(name: str, development_default: str) -> str:
    """Read a setting from the environment; in production it must be set explicitly."""
    value = os.environ.get(name)
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when PORTAL_ENV=production.")
    return development_default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Public (it is in this file): good for nothing but a developer's own machine with DEBUG on.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"
SECRET_KEY = env("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
# Older keys, still accepted for signatures and encrypted secrets while sessions, links and
# authenticators made with them remain: set the old key here when changing DJANGO_SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG must be off when PORTAL_ENV=production: debug pages show settings and code."
    )
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a secret of your own whenever DJANGO_DEBUG is off: the "
        "development key is public. Make one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or (
    [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when PORTAL_ENV=production.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "lti_tool",
    "accounts_app",
    "billing_app",
    "lms_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "accounts_app.middleware.SignInPageCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts_app.middleware.StaffIdleTimeoutMiddleware",
    "accounts_app.middleware.RequireMFAMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "accounts_app.context_processors.site_roles",
                "accounts_app.context_processors.account_states",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60" if PRODUCTION else "0")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The zero-setup default is shared by the web server, a worker and beat: write-ahead logging
    # lets readers work beside a writer, and IMMEDIATE transactions queue writers instead of
    # failing them with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts_app.User"

# --- Cache (login rate limits must be shared by every web process) --------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL must be set when PORTAL_ENV=production.")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# The usage meter reads every student account this often (one task per account, spread over the
# interval); each reading costs a bounded number of AWS calls per region (docs/COSTS.md).
PORTAL_METER_INTERVAL_MINUTES = int(os.environ.get("PORTAL_METER_INTERVAL_MINUTES", "5"))
if PORTAL_METER_INTERVAL_MINUTES < 1:
    raise ImproperlyConfigured("PORTAL_METER_INTERVAL_MINUTES must be a whole number of minutes, 1 or more.")

# Course schedules (docs/COSTS.md, "Schedules"): every interval, what runs in the accounts of a
# course outside its hours is stopped (one task per account, spread over the interval), and an
# EC2 instance idle for the course's idle hours. A nightly stop's night lasts this many hours.
PORTAL_SCHEDULE_INTERVAL_MINUTES = int(os.environ.get("PORTAL_SCHEDULE_INTERVAL_MINUTES", "10"))
if PORTAL_SCHEDULE_INTERVAL_MINUTES < 1:
    raise ImproperlyConfigured("PORTAL_SCHEDULE_INTERVAL_MINUTES must be a whole number of minutes, 1 or more.")
PORTAL_SCHEDULE_NIGHT_HOURS = float(os.environ.get("PORTAL_SCHEDULE_NIGHT_HOURS", "8"))
if not 1 <= PORTAL_SCHEDULE_NIGHT_HOURS < 24:
    raise ImproperlyConfigured("PORTAL_SCHEDULE_NIGHT_HOURS must be 1 or more and less than 24.")
# Idle: the CPU never reached this (CloudWatch's CPUUtilization maximum) and the network in and out
# averaged less than this an hour.
PORTAL_IDLE_MAX_CPU_PERCENT = float(os.environ.get("PORTAL_IDLE_MAX_CPU_PERCENT", "5"))
PORTAL_IDLE_MAX_NETWORK_MB_PER_HOUR = float(os.environ.get("PORTAL_IDLE_MAX_NETWORK_MB_PER_HOUR", "5"))

# Due times (docs/OPERATIONS.md, "Recovery"): an account whose next step is the portal's carries
# when that step is due. Beat's tick queues, every PORTAL_DUE_TICK_SECONDS, each step whose time has
# come; a step queued through the broker that has not moved its account on PORTAL_STEP_GRACE_SECONDS
# after its time is taken as lost and queued again (every step is safe to run twice).
PORTAL_DUE_TICK_SECONDS = float(os.environ.get("PORTAL_DUE_TICK_SECONDS", "15"))
PORTAL_STEP_GRACE_SECONDS = float(os.environ.get("PORTAL_STEP_GRACE_SECONDS", "60"))
if PORTAL_DUE_TICK_SECONDS <= 0 or PORTAL_STEP_GRACE_SECONDS <= 0:
    raise ImproperlyConfigured("PORTAL_DUE_TICK_SECONDS and PORTAL_STEP_GRACE_SECONDS must be more than 0.")

# --- Celery (settings that hold when workers crash; see docs/OPERATIONS.md) -----------------------
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = (
    # Longer than any task and every countdown but one, or Redis hands an unacknowledged task to a
    # second worker. That one (the close queue's next look during a closure-quota pause, up to
    # PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS) may run twice: one more dispatch, as beat's are.
    {"visibility_timeout": 2 * 60 * 60}
    if REDIS_URL
    else {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "control_folder": str(VAR_DIR / "broker-control"),
    }
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 5 * 60
CELERY_TASK_TIME_LIMIT = 6 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Reviewed in code rather than edited in the admin: exactly one beat process runs these.
CELERY_BEAT_SCHEDULE = {
    "reconcile-aws": {"task": "accounts_app.tasks.reconcile_task", "schedule": 5 * 60},
    # Every account's next step that is due (a poll, a retry, a pass, a queue's next move), from
    # its due time in the database: what the broker lost is queued again (next_step.py).
    "steps-due": {"task": "accounts_app.tasks.steps_due_task", "schedule": PORTAL_DUE_TICK_SECONDS},
    # Course end notices, end-date freezes and grace periods are counted in days: a quarter of
    # an hour is punctual enough.
    "course-ends": {"task": "accounts_app.tasks.courses_end_tick_task", "schedule": 15 * 60},
    # Cost Explorer updates about three times a day; each sync costs a few cents.
    "sync-costs": {"task": "billing_app.tasks.costs_sync_task", "schedule": 8 * 60 * 60},
    # What runs now in each student account and what it costs an hour (docs/COSTS.md).
    "meter-usage": {"task": "billing_app.tasks.meter_cycle_task", "schedule": PORTAL_METER_INTERVAL_MINUTES * 60},
    # Course schedules: what runs outside class hours or at night, and what sits idle, is stopped.
    "schedules": {"task": "billing_app.tasks.schedules_tick_task", "schedule": PORTAL_SCHEDULE_INTERVAL_MINUTES * 60},
    # The rosters of courses linked to an LMS, from its names and roles service: at night (in
    # PORTAL_TIME_ZONE), when classes change least and nobody waits on the LMS.
    "lms-rosters": {"task": "lms_app.tasks.lms_rosters_sync_nightly_task", "schedule": crontab(hour=3, minute=30)},
    # LTI launches' nonces are kept a day to refuse a launch played again; older ones may go.
    "lti-nonces": {"task": "lms_app.tasks.launch_nonces_purge_task", "schedule": 60 * 60},
}

# --- Sign-in (django-allauth) ---------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Classroom Cloud] "
# Queues allauth's emails for the task that sends every email, after the request's changes commit.
ACCOUNT_ADAPTER = "accounts_app.account_adapter.PortalAccountAdapter"
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    # Wrong join codes (accounts_app/views/invitations.py): enough for typos, even from a whole
    # classroom behind one address, far too few to guess a code among 31^8.
    "join_code_failed": "30/10m/ip,10/10m/user",
}
# Behind a load balancer the client address is in X-Forwarded-For: tell allauth how many proxies
# to skip, or every login would share the proxy's rate limit.
ALLAUTH_TRUSTED_PROXY_COUNT = int(os.environ.get("PORTAL_TRUSTED_PROXY_COUNT", "0"))
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# Stores authenticator secrets and recovery-code seeds encrypted with a key derived from SECRET_KEY.
MFA_ADAPTER = "accounts_app.mfa_adapter.PortalMFAAdapter"
MFA_TOTP_ISSUER = "Classroom Cloud Portal"
# Campus single sign-on (docs/SSO.md): each identity provider is a SocialApp ("openid_connect")
# an administrator adds in the admin. Its settings name the email domains it is trusted for; an
# identity at one of them is a verified address, and signs in the portal user who holds it.
SOCIALACCOUNT_ADAPTER = "accounts_app.sso.PortalSocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
# Off: students sign in only through their university's provider; administrators, instructors and
# TAs keep their password (and its second factor) as a way in when the provider is down.
PORTAL_STUDENT_PASSWORDS = env_bool("PORTAL_STUDENT_PASSWORDS", True)
# On: staff who signed in through a provider whose ID token says it asked for a second factor
# (`amr` holds "mfa" or "otp", or `acr` is one of the provider's "mfa_acr_values") are not asked
# for the portal's own. Off (the default): the portal's TOTP is asked of them as of everyone.
PORTAL_SSO_TRUST_IDP_MFA = env_bool("PORTAL_SSO_TRUST_IDP_MFA", False)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "courses:list"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# Administrators and instructors must enrol an authenticator before they can use the portal.
PORTAL_REQUIRE_MFA_FOR_STAFF = env_bool("PORTAL_REQUIRE_MFA_FOR_STAFF", PRODUCTION)
# Administrators, instructors and TAs are signed out after this long without a request.
PORTAL_STAFF_IDLE_TIMEOUT_MINUTES = int(os.environ.get("PORTAL_STAFF_IDLE_TIMEOUT_MINUTES", "30"))
if PORTAL_STAFF_IDLE_TIMEOUT_MINUTES < 1:
    raise ImproperlyConfigured("PORTAL_STAFF_IDLE_TIMEOUT_MINUTES must be a whole number of minutes, 1 or more.")
# People signing in with a verified address at these domains may create courses.
PORTAL_INSTRUCTOR_EMAIL_DOMAINS = env_list("PORTAL_INSTRUCTOR_EMAIL_DOMAINS")
PORTAL_INVITATION_MAX_AGE_DAYS = int(os.environ.get("PORTAL_INVITATION_MAX_AGE_DAYS", "14"))
PORTAL_ROSTER_MAX_BYTES = 2 * 1024 * 1024
PORTAL_ROSTER_MAX_ROWS = 5000
# Rosters an LMS keeps (lms_app): a launch into a course syncs its roster at most once this often.
PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES = int(os.environ.get("PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES", "10"))
if PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES < 1:
    raise ImproperlyConfigured("PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES must be a whole number of minutes, 1 or more.")
# An automatic sync (a launch's, the nightly one) that would remove more students than this many,
# or this percentage of the class when that is more, changes nothing and waits for an instructor:
# an LMS answering an empty class by mistake must not end the students' AWS accounts.
PORTAL_LMS_SYNC_MAX_REMOVALS = int(os.environ.get("PORTAL_LMS_SYNC_MAX_REMOVALS", "3"))
PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT = int(os.environ.get("PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT", "10"))
if PORTAL_LMS_SYNC_MAX_REMOVALS < 0 or not 0 <= PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT <= 100:
    raise ImproperlyConfigured(
        "PORTAL_LMS_SYNC_MAX_REMOVALS must be 0 or more, PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT from 0 to 100."
    )
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://localhost:8000")

# --- AWS ------------------------------------------------------------------------------------------
# Credentials come from boto3's default chain; AWS_ENDPOINT_URL points every client at an emulator
# (AWS_ENDPOINT_URL_<SERVICE>, one service). Production talks to AWS itself, never to an emulator.
aws_endpoint_variables = sorted(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL"))
if PRODUCTION and aws_endpoint_variables:
    raise ImproperlyConfigured(
        f"{', '.join(aws_endpoint_variables)} must not be set when PORTAL_ENV=production: an "
        "endpoint URL points the portal at an AWS emulator instead of AWS."
    )
PORTAL_AWS_REGION = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
# Assumed first when set: the role in the management account that the portal acts through.
PORTAL_AWS_MANAGEMENT_ROLE_ARN = os.environ.get("PORTAL_AWS_MANAGEMENT_ROLE_ARN", "")
# The role Organizations creates in every member account, assumed to work inside it.
PORTAL_AWS_MEMBER_ROLE_NAME = os.environ.get("PORTAL_AWS_MEMBER_ROLE_NAME", "OrganizationAccountAccessRole")
PORTAL_AWS_OU_NAME = os.environ.get("PORTAL_AWS_OU_NAME", "Classroom Cloud")
# Root email of each student account: one deterministic address per (course, student).
PORTAL_ROOT_EMAIL_PATTERN = os.environ.get("PORTAL_ROOT_EMAIL_PATTERN", "aws+{course}-{student}@school.example.edu")
# School-wide region allow-list (baseline SCP); each course narrows it further.
PORTAL_AWS_SCHOOL_REGIONS = env_list(
    "PORTAL_AWS_SCHOOL_REGIONS", "us-east-1,us-east-2,us-west-2,eu-west-1,eu-central-1"
)
# "portal": the portal creates Identity Center users; "external": they come from the school's
# identity provider (SCIM) and the portal only looks them up.
PORTAL_IDENTITY_SOURCE = os.environ.get("PORTAL_IDENTITY_SOURCE", "portal")
# IAM Identity Center lives in one region of the organization, often not the portal's own.
PORTAL_AWS_IDENTITY_CENTER_REGION = os.environ.get("PORTAL_AWS_IDENTITY_CENTER_REGION") or PORTAL_AWS_REGION
# The school's phone number for the alternate contacts of student accounts (AWS requires one);
# without it the contacts are left as they are.
PORTAL_CONTACT_PHONE = os.environ.get("PORTAL_CONTACT_PHONE", "")
# Organizations quotas (AWS's published values; the benchmark scales them).
PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS = int(os.environ.get("PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS", "5"))
PORTAL_AWS_CREATE_ACCOUNT_RATE = float(os.environ.get("PORTAL_AWS_CREATE_ACCOUNT_RATE", "0.1"))
PORTAL_AWS_CREATE_ACCOUNT_BURST = int(os.environ.get("PORTAL_AWS_CREATE_ACCOUNT_BURST", "3"))
# Used when Service Quotas cannot tell the organization's account limit.
PORTAL_AWS_ACCOUNT_LIMIT = int(os.environ.get("PORTAL_AWS_ACCOUNT_LIMIT", "10"))
# A brand-new account refuses AssumeRole and Identity Center assignments for a few minutes:
# within this window after its creation, those refusals are retried instead of failing it.
PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES = int(os.environ.get("PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES", "15"))
# Where the CloudFormation template for the access role of an invited account is published
# (an S3 URL; the template itself is served by the portal at /aws/access-role.yaml).
PORTAL_ACCESS_ROLE_TEMPLATE_URL = os.environ.get("PORTAL_ACCESS_ROLE_TEMPLATE_URL", "")
# Requests to bring an existing account a student may make in one course, declined and failed
# ones included: each one that is approved sends an invitation to an account of their choosing.
PORTAL_BRING_REQUESTS_PER_STUDENT = int(os.environ.get("PORTAL_BRING_REQUESTS_PER_STUDENT", "3"))
# Invitations AWS lets the organization send in 24 hours (InviteAccountToOrganization's quota).
PORTAL_AWS_INVITATIONS_PER_DAY = int(os.environ.get("PORTAL_AWS_INVITATIONS_PER_DAY", "20"))
# How long AWS typically takes to create an account: a creation is first looked at once this long
# has passed since its CreateAccount (every look earlier would be answered IN_PROGRESS). Then it
# is looked at again after a tenth of the time it has taken so far (AWS's answer is seen at most
# ~10% late), never sooner than PORTAL_AWS_POLL_SECONDS nor later than PORTAL_AWS_POLL_MAX_SECONDS.
# PORTAL_AWS_POLL_SECONDS is also how soon a closure AWS does not show yet is looked at again.
PORTAL_AWS_CREATION_SECONDS = float(os.environ.get("PORTAL_AWS_CREATION_SECONDS", "60"))
# A CreateAccount whose answer was lost, and that AWS does not list this long after it was sent,
# never reached AWS: it is sent again (after looking once more). AWS lists a request it took at
# once; the wait covers its lists catching up.
PORTAL_AWS_LOST_REQUEST_SECONDS = float(os.environ.get("PORTAL_AWS_LOST_REQUEST_SECONDS", "120"))
PORTAL_AWS_POLL_SECONDS = float(os.environ.get("PORTAL_AWS_POLL_SECONDS", "5"))
PORTAL_AWS_POLL_MAX_SECONDS = float(os.environ.get("PORTAL_AWS_POLL_MAX_SECONDS", "60"))
# End of course. CloseAccount: 3 closures in progress, 0.05 requests a second, and at most
# max(250, 20% of the members) per rolling 30 days (counted by the portal, capped at 1,000).
PORTAL_AWS_MAX_CLOSURES_IN_PROGRESS = int(os.environ.get("PORTAL_AWS_MAX_CLOSURES_IN_PROGRESS", "3"))
PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL = float(os.environ.get("PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL", "20"))
PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS = float(os.environ.get("PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS", "6"))
# Cleanup passes inside an ended account, spaced so that deletions AWS finishes in the
# background (instances terminating, volumes detaching) free what depends on them.
PORTAL_CLEANUP_MAX_PASSES = int(os.environ.get("PORTAL_CLEANUP_MAX_PASSES", "8"))
# Regions cleanup looks in; empty means every region enabled in the account.
PORTAL_CLEANUP_REGIONS = env_list("PORTAL_CLEANUP_REGIONS")
# Roles cleanup leaves in every account (shell-style name patterns, any case), besides the portal's
# own, service-linked and Identity Center's: the school's own tooling deploys through these.
PORTAL_CLEANUP_KEEP_ROLES = env_list(
    "PORTAL_CLEANUP_KEEP_ROLES",
    "AWSControlTowerExecution,aws-controltower-*,AWSCloudFormationStackSetExecutionRole,stacksets-exec-*",
)
PORTAL_CLEANUP_PASS_DELAY_SECONDS = float(os.environ.get("PORTAL_CLEANUP_PASS_DELAY_SECONDS", "60"))
# A frozen account is looked at again this often: what bills is stopped again (AWS itself starts
# a stopped RDS DB instance or Aurora cluster after seven days). The reconciler queues at most this
# many of these looks a run, the longest unchecked first.
PORTAL_SPENDING_RECHECK_HOURS = float(os.environ.get("PORTAL_SPENDING_RECHECK_HOURS", "24"))
PORTAL_SPENDING_CHECKS_PER_RUN = int(os.environ.get("PORTAL_SPENDING_CHECKS_PER_RUN", "20"))
# A recycled account waits this long before its next student, so that the last days' costs
# of the previous one (Cost Explorer lags up to a day) are not billed to the next.
PORTAL_RECYCLE_COOLDOWN_DAYS = int(os.environ.get("PORTAL_RECYCLE_COOLDOWN_DAYS", "2"))
# AWS lets a created account leave its organization this many days after its creation.
PORTAL_HANDOVER_WAIT_DAYS = int(os.environ.get("PORTAL_HANDOVER_WAIT_DAYS", "4"))
# An approved handover with no step done for this many days is cancelled; its instructors are told.
PORTAL_HANDOVER_TIMEOUT_DAYS = int(os.environ.get("PORTAL_HANDOVER_TIMEOUT_DAYS", "30"))

# --- Costs ----------------------------------------------------------------------------------------
# Days re-synced each time: Cost Explorer revises recent figures (month totals settle mid next month).
PORTAL_COST_SYNC_DAYS = int(os.environ.get("PORTAL_COST_SYNC_DAYS", "14"))
# HOURLY granularity is opt-in and billed by AWS; when on, the portal keeps its own hourly history.
PORTAL_COST_HOURLY = env_bool("PORTAL_COST_HOURLY", False)
# Role AWS Budgets assumes to attach the freeze SCP (budget actions); needed only when a course
# turns budget actions on.
PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = os.environ.get("PORTAL_AWS_BUDGET_ACTION_ROLE_ARN", "")

# --- Email ----------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Classroom Cloud <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Development prints emails on the console; production sends them through SMTP.
if PRODUCTION or os.environ.get("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": env("EMAIL_HOST", "localhost"),
                "port": int(os.environ.get("EMAIL_PORT", "587")),
                "username": os.environ.get("EMAIL_HOST_USER", ""),
                "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", True),
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Security -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# No inline script anywhere: every script is a static file.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "INFO")},
}
