"""A full disk is not an internal error: HTTP 507 with a JSON body naming the failure class."""

from __future__ import annotations

import errno
import json

from webob import Request

from lwr.auth import Credentials
from lwr.web.app import LwrWebApp


class FullDiskService:
    managers: dict[str, object] = {"_default_": object()}
    staging_hooks = None

    def manager(self, name: str) -> object:
        return self.managers[name]

    def find_or_none(self, *args: object) -> None:
        return None

    def setup(self, *args: object, **kwargs: object) -> dict[str, object]:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_setup_on_a_full_disk_is_refused_with_507() -> None:
    app = LwrWebApp(FullDiskService(), Credentials(open=True), None, None)  # type: ignore[arg-type]
    response = Request.blank("/jobs?job_id=1", method="POST").get_response(app)
    assert response.status_int == 507
    body = json.loads(response.body)
    assert body["failure_class"] == "disk_full" and "space" in body["error"]
