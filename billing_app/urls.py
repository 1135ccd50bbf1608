from django.urls import path

from billing_app import budget_request_views, limits_views, organization_views, schedule_views, views

app_name = "billing"
urlpatterns = [
    path("overview/", organization_views.organization, name="organization"),
    path("<int:course_id>/costs/", views.course_costs, name="costs"),
    path("<int:course_id>/costs/export.csv", views.costs_export, name="costs_export"),
    path("<int:course_id>/costs/limits/", limits_views.spend_limits, name="spend_limits"),
    path("<int:course_id>/costs/statement/<int:year>-<int:month>/", views.statement, name="statement"),
    path("<int:course_id>/costs/students/<int:account_id>/", views.student_costs, name="student_costs"),
    path("<int:course_id>/costs/students/<int:account_id>/freeze/", views.freeze, name="freeze"),
    path("<int:course_id>/costs/students/<int:account_id>/unfreeze/", views.unfreeze, name="unfreeze"),
    path("<int:course_id>/my-costs/", views.my_costs, name="my_costs"),
    path("<int:course_id>/my-costs/budget-request/", budget_request_views.budget_request, name="budget_request"),
    path(
        "<int:course_id>/budget-requests/<int:request_id>/",
        budget_request_views.budget_request_review,
        name="budget_request_review",
    ),
    path(
        "<int:course_id>/budget-requests/<int:request_id>/approve/",
        budget_request_views.budget_request_approve,
        name="budget_request_approve",
    ),
    path(
        "<int:course_id>/budget-requests/<int:request_id>/decline/",
        budget_request_views.budget_request_decline,
        name="budget_request_decline",
    ),
    path("<int:course_id>/my-costs/running-now/", views.my_meter, name="my_meter"),
    path("<int:course_id>/schedule/", schedule_views.schedule, name="schedule"),
    path("<int:course_id>/my-costs/scheduled-stops/", schedule_views.my_scheduled_stops, name="my_scheduled_stops"),
    path(
        "<int:course_id>/my-costs/scheduled-stops/<int:stop_id>/start/",
        schedule_views.scheduled_stop_start,
        name="scheduled_stop_start",
    ),
]
