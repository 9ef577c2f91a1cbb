"""The hub's URLs plus the framework's floor: a trivial view returning a constant JSON."""

from django.http import JsonResponse
from django.urls import path

from hubsite.urls import urlpatterns as hub_urlpatterns

_CONSTANT = {"status": "ok", "items": [1, 2, 3]}


def floor(request):
    return JsonResponse(_CONSTANT)


urlpatterns = [path("bench/floor", floor), *hub_urlpatterns]
