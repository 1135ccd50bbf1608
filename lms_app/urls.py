from django.urls import path
from lti_tool.views import jwks

from lms_app import launch_views, roster_sync_views, views

app_name = "lms"

urlpatterns = [
    # What platforms fetch: the portal's public keys, and where a launch starts (OpenID Connect
    # third-party login initiation), one address per registration.
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("init/<uuid:registration_uuid>/", launch_views.LoginInitView.as_view(), name="login_init"),
    # Login initiation at one address for every registered LMS, found by the request's issuer and
    # client id (Canvas and Moodle send both): the LMS gives the client id only once the tool is
    # registered there, too late to be part of an address typed into it.
    path("init/", launch_views.LoginInitView.as_view(), name="login_init_any"),
    # Registering an LMS (docs/LMS.md): the Canvas developer key's JSON, LTI Dynamic Registration.
    path("config/canvas.json", views.canvas_config, name="canvas_config"),
    path("register/", views.dynamic_registration, name="dynamic_registration"),
    # Where the platform posts the signed launch (the tool's redirect URI and target link URI).
    path("launch/", launch_views.launch, name="launch"),
    # An instructor's first launch from an LMS course the portal has no course for.
    path("setup/<int:context_id>/", launch_views.setup, name="setup"),
    path("setup/<int:context_id>/create/", launch_views.setup_create, name="setup_create"),
    path("setup/<int:context_id>/link/", launch_views.setup_link, name="setup_link"),
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
