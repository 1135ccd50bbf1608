from django.urls import include, path

from accounts_app.views import aws_accounts, courses, ending, invitations, roster

course_patterns = [
    path("", courses.course_list, name="list"),
    path("new/", courses.course_create, name="create"),
    path("<int:course_id>/", courses.course_detail, name="detail"),
    path("<int:course_id>/settings/", courses.course_edit, name="edit"),
    path("<int:course_id>/archive/", courses.course_archive, name="archive"),
    path("<int:course_id>/join-code/", courses.course_join_code, name="join_code"),
    path("<int:course_id>/audit/", courses.course_audit, name="audit"),
    path("<int:course_id>/roster/", roster.roster, name="roster"),
    path("<int:course_id>/roster/export.csv", roster.roster_export, name="roster_export"),
    path("<int:course_id>/roster/import/", roster.roster_import, name="roster_import"),
    path(
        "<int:course_id>/roster/import/<int:upload_id>/",
        roster.roster_preview,
        name="roster_preview",
    ),
    path("<int:course_id>/roster/add/", roster.member_add, name="member_add"),
    path("<int:course_id>/roster/invite/", roster.invitations_send_pending, name="invite_pending"),
    path("<int:course_id>/roster/<int:member_id>/role/", roster.member_role, name="member_role"),
    path("<int:course_id>/roster/<int:member_id>/resend/", roster.member_resend, name="member_resend"),
    path("<int:course_id>/roster/<int:member_id>/remove/", roster.member_remove, name="member_remove"),
    path("<int:course_id>/my-account/", aws_accounts.my_account, name="my_account"),
    path("<int:course_id>/my-account/request/", aws_accounts.account_request, name="account_request"),
    path("<int:course_id>/my-account/bring/", aws_accounts.account_bring, name="account_bring"),
    path("<int:course_id>/my-account/check-role/", aws_accounts.account_check_role, name="account_check_role"),
    path("<int:course_id>/my-account/password/", aws_accounts.account_password, name="account_password"),
    path("<int:course_id>/accounts/provision/", aws_accounts.provision_all, name="provision_all"),
    path("<int:course_id>/accounts/precreate/", aws_accounts.precreate, name="precreate"),
    path("<int:course_id>/accounts/<int:account_id>/retry/", aws_accounts.account_retry, name="account_retry"),
    path(
        "<int:course_id>/accounts/<int:account_id>/bring/approve/",
        aws_accounts.account_bring_approve,
        name="account_bring_approve",
    ),
    path(
        "<int:course_id>/accounts/<int:account_id>/bring/decline/",
        aws_accounts.account_bring_decline,
        name="account_bring_decline",
    ),
    path("<int:course_id>/end/", ending.course_end, name="end"),
    path("<int:course_id>/end/now/", ending.course_end_now, name="end_now"),
    path("<int:course_id>/end/extend/", ending.course_extend, name="end_extend"),
    path("<int:course_id>/end/preview/", ending.cleanup_preview, name="cleanup_preview"),
    path("<int:course_id>/accounts/<int:account_id>/exclude/", ending.account_exclude, name="account_exclude"),
    path("<int:course_id>/accounts/<int:account_id>/handover/", ending.handover_review, name="handover_review"),
    path(
        "<int:course_id>/accounts/<int:account_id>/handover/approve/", ending.handover_approve, name="handover_approve"
    ),
    path(
        "<int:course_id>/accounts/<int:account_id>/handover/decline/", ending.handover_decline, name="handover_decline"
    ),
    path("<int:course_id>/accounts/<int:account_id>/handover/cancel/", ending.handover_cancel, name="handover_cancel"),
    path("<int:course_id>/my-account/keep/", ending.handover_start, name="handover_start"),
    path("<int:course_id>/my-account/handover/", ending.my_handover, name="my_handover"),
    path("<int:course_id>/my-account/handover/code/", ending.my_handover_code, name="my_handover_code"),
    path("<int:course_id>/my-account/handover/resend/", ending.my_handover_resend, name="my_handover_resend"),
    path("<int:course_id>/my-account/handover/ready/", ending.my_handover_ready, name="my_handover_ready"),
    path("<int:course_id>/my-account/handover/cancel/", ending.my_handover_cancel, name="my_handover_cancel"),
]

urlpatterns = [
    path("courses/", include((course_patterns, "courses"))),
    path("invite/<str:token>/", invitations.invitation, name="invitation"),
    path("join/", invitations.join, name="join"),
    path("join/<str:code>/", invitations.join_course, name="join_course"),
    path("aws/", aws_accounts.aws_overview, name="aws_overview"),
    path("aws/access-role.yaml", aws_accounts.access_role_template, name="access_role_template"),
]
