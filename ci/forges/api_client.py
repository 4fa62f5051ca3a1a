"""The HTTP opener for calls to forge APIs: statuses, webhook setup.

It follows no redirect: each call carries the forge token in its headers, which urllib
would send along to wherever a redirect points, another host included. A 3xx then
surfaces as an ``HTTPError`` that the caller reports.
"""

from __future__ import annotations

import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)
