from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="courses:list", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts_app.urls")),
    path("courses/", include("billing_app.urls")),
]
