from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal.health import healthz

# The admin's own sign-in form would take a password alone, past the second factor and the
# sign-in rate limits: send it to allauth's sign-in instead, which has both.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="courses:list", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts_app.urls")),
    path("courses/", include("billing_app.urls")),
    path("lti/", include("lms_app.urls")),
]
