from django.urls import path
from lti_tool.views import OIDCLoginInitView, jwks

app_name = "lms"

urlpatterns = [
    # What platforms fetch: the portal's public keys, and where a launch starts (OpenID Connect
    # third-party login initiation), one address per registration.
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("init/<uuid:registration_uuid>/", OIDCLoginInitView.as_view(), name="login_init"),
]
