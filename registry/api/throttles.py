"""DRF throttles that do not count a request twice when the anonymous fast path already did."""

from rest_framework.throttling import AnonRateThrottle

from .fastpath import FAST_THROTTLED


class HubAnonRateThrottle(AnonRateThrottle):
    def allow_request(self, request, view):
        if getattr(request._request, FAST_THROTTLED, False):
            return True
        return super().allow_request(request, view)
