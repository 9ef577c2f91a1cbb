"""OpenAPI description of the hub's bearer-token authentication (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HubTokenScheme(OpenApiAuthenticationExtension):
    target_class = "registry.api.auth.HubTokenAuthentication"
    name = "hubToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "an API token: 'Authorization: Bearer ahub_...' (create one at /api/v1/tokens or with "
            "'manage.py hubtoken')",
        }
