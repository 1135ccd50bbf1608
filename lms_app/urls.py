from django.urls import path
from lti_tool.views import OIDCLoginInitView, jwks

from lms_app import roster_sync_views, views

app_name = "lms"

urlpatterns = [
    # What platforms fetch: the portal's public keys, and where a launch starts (OpenID Connect
    # third-party login initiation), one address per registration.
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("init/<uuid:registration_uuid>/", OIDCLoginInitView.as_view(), name="login_init"),
    # Registering an LMS (docs/LMS.md): login initiation for every registration (by issuer and
    # client id), the Canvas developer key's JSON, and LTI Dynamic Registration.
    path("init/", views.PlatformLoginInitView.as_view(), name="login_init_any"),
    path("config/canvas.json", views.canvas_config, name="canvas_config"),
    path("register/", views.dynamic_registration, name="dynamic_registration"),
    # A linked course's roster from the LMS: Sync now, and the list waiting for an instructor.
    path("courses/<int:course_id>/roster-sync/", roster_sync_views.roster_sync_now, name="roster_sync"),
    path(
        "courses/<int:course_id>/roster-sync/review/", roster_sync_views.roster_sync_review, name="roster_sync_review"
    ),
    path(
        "courses/<int:course_id>/roster-sync/<int:fetch_id>/",
        roster_sync_views.roster_sync_preview,
        name="roster_sync_preview",
    ),
]
