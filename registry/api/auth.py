"""Bearer-token authentication: ``Authorization: Bearer ahub_...`` (or ``Token ahub_...``)."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from ..tokens import find_token


class HubTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header: expected 'Bearer <token>'")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        token = find_token(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("invalid token")
        if token.is_revoked:
            raise exceptions.AuthenticationFailed("this token has been revoked")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("this token has expired")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("this user account is disabled")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            type(token).objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
