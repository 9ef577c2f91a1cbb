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


# Answers every operation can give: a bad, expired or revoked token (401) and the throttle (429).
COMMON_ERRORS = {"401": "no or bad credentials", "429": "throttled; see Retry-After"}


def declare_common_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: declare COMMON_ERRORS on every operation."""
    error = {"$ref": "#/components/schemas/ApiError"}
    for item in result.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                responses.setdefault(
                    status, {"content": {"application/json": {"schema": error}}, "description": description}
                )
    return result
