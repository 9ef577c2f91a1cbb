"""Accounts (sign up; Django's own views do sign in, sign out and password reset) and API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ..models import ApiToken, Organisation
from ..tokens import create_token
from .forms import SignUpForm, TokenForm


NEW_TOKEN_KEY = "web:new-token"


def signup(request):
    if request.user.is_authenticated:
        return redirect("web:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Create an API token to use the hub from Python.")
        return redirect("web:tokens")
    return render(request, "registration/signup.html", {"form": form})


def _user_organisations(user) -> list[Organisation]:
    return list(Organisation.objects.filter(memberships__user=user).order_by("slug"))


@never_cache
@login_required
def tokens(request):
    """List and create tokens. A new token's raw value is shown on the next page view only
    (post/redirect/get: reloading never creates a second token; the session forgets it once shown)."""
    orgs = _user_organisations(request.user)
    form = TokenForm(request.POST or None, organisations=orgs)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        chosen = [o for o in orgs if o.slug in data["organisations"]]
        _, raw = create_token(request.user, scope=data["scope"], organisations=chosen,
                              expires_days=data["expires_days"], name=data["name"])
        request.session[NEW_TOKEN_KEY] = raw
        return redirect("web:tokens")
    raw = request.session.pop(NEW_TOKEN_KEY, None)
    created = {"raw": raw} if raw else None
    listed = ApiToken.objects.filter(user=request.user).prefetch_related("organisations").order_by("-created_at", "-id")
    return render(request, "web/tokens.html", {"form": form, "tokens": listed, "created": created,
                                               "now": timezone.now()})


@login_required
@require_POST
def revoke_token(request, pk: int):
    token = ApiToken.objects.filter(user=request.user, pk=pk).first()
    if token is None:
        messages.error(request, "No such token.")
    elif token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        messages.success(request, f"Token {token.prefix}\u2026 was revoked.")
    return redirect("web:tokens")
