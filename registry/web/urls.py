"""Routes of the web pages (namespace ``web``), mounted at the site's root by hubsite.urls."""

from django.urls import path

from . import views_account, views_adapter, views_browse, views_upload

app_name = "web"
VERSION = "<int:pk>/versions/<str:version>"

urlpatterns = [
    path("", views_browse.home, name="home"),
    path("explore/", views_browse.explore, name="explore"),
    path("search/", views_browse.search_view, name="search"),
    path("leaderboards/", views_browse.leaderboards, name="leaderboards"),
    path("leaderboards/<slug:task>/<slug:subtask>/", views_browse.leaderboard_view, name="leaderboard"),
    path("orgs/<slug:slug>/", views_browse.organisation, name="organisation"),
    path("adapters/<int:pk>/", views_adapter.adapter_page, name="adapter"),
    path("adapters/<int:pk>/edit/", views_adapter.edit_description, name="edit-description"),
    path("adapters/<int:pk>/default/", views_adapter.set_default, name="set-default"),
    path("adapters/<int:pk>/try/", views_adapter.try_adapter, name="try"),
    path(f"adapters/{VERSION}/", views_adapter.version_page, name="version"),
    path(f"adapters/{VERSION}/status.json", views_adapter.version_status, name="version-status"),
    path(f"adapters/{VERSION}/yank/", views_adapter.yank_version, name="yank"),
    path("upload/", views_upload.upload, name="upload"),
    path("accounts/signup/", views_account.signup, name="signup"),
    path("settings/tokens/", views_account.tokens, name="tokens"),
    path("settings/tokens/<int:pk>/revoke/", views_account.revoke_token, name="revoke-token"),
]
