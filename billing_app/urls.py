from django.urls import path

from billing_app import views

app_name = "billing"
urlpatterns = [
    path("<int:course_id>/costs/", views.course_costs, name="costs"),
    path("<int:course_id>/costs/export.csv", views.costs_export, name="costs_export"),
    path("<int:course_id>/costs/statement/<int:year>-<int:month>/", views.statement, name="statement"),
    path("<int:course_id>/costs/students/<int:account_id>/", views.student_costs, name="student_costs"),
    path("<int:course_id>/costs/students/<int:account_id>/freeze/", views.freeze, name="freeze"),
    path("<int:course_id>/costs/students/<int:account_id>/unfreeze/", views.unfreeze, name="unfreeze"),
    path("<int:course_id>/my-costs/", views.my_costs, name="my_costs"),
    path("<int:course_id>/my-costs/running-now/", views.my_meter, name="my_meter"),
]
