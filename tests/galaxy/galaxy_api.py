"""The few calls of Galaxy's REST API the tests make, as its admin (``x-api-key``)."""

from __future__ import annotations

import time
from typing import Any

import requests

#: Job states after which Galaxy does nothing more with a job.
FINAL_JOB_STATES = {"ok", "error", "failed", "deleted", "deleting", "skipped", "paused"}


class GalaxyApi:
    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}/api/{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /api/{path}: HTTP {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def admin_user_api(self, email: str, password: str = "lwr-test-password") -> GalaxyApi:
        """Create the admin user (``email`` is in admin_users) and return an API acting as it.

        The bootstrap key is no user: it may create users and keys, not histories.
        """
        user = self.post("users", {"username": email.split("@")[0], "email": email, "password": password})
        key = self._call("POST", f"users/{user['id']}/api_key")
        return GalaxyApi(self.url, str(key))

    def create_history(self, name: str) -> str:
        return str(self.post("histories", {"name": name})["id"])

    def upload_text(self, history_id: str, name: str, content: str) -> str:
        """Paste ``content`` into a new txt dataset (Galaxy's upload job runs locally); its id."""
        reply = self.post(
            "tools/fetch",
            {
                "history_id": history_id,
                "targets": [
                    {
                        "destination": {"type": "hdas"},
                        "elements": [{"src": "pasted", "paste_content": content, "name": name, "ext": "txt"}],
                    }
                ],
            },
        )
        return str(reply["outputs"][0]["id"])

    def run_tool(self, history_id: str, tool_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self.post(
            "tools", {"history_id": history_id, "tool_id": tool_id, "inputs": inputs}
        )
        return reply

    def wait_for_dataset(self, dataset_id: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            dataset: dict[str, Any] = self.get(f"datasets/{dataset_id}")
            if dataset["state"] in ("ok", "error", "failed_metadata", "discarded", "deferred"):
                return dataset
            if time.monotonic() > deadline:
                raise AssertionError(f"dataset {dataset_id} still {dataset['state']} after {timeout} s")
            time.sleep(0.5)

    def wait_for_job(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """The job's full record once Galaxy has finished it (``ok``, ``error``, ...)."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"jobs/{job_id}", full="true")
            if job["state"] in FINAL_JOB_STATES:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.5)

    def dataset_text(self, dataset_id: str) -> str:
        response = self.session.get(
            f"{self.url}/api/datasets/{dataset_id}/display", params={"preview": "false"}, timeout=60
        )
        if response.status_code >= 400:
            raise AssertionError(f"dataset {dataset_id}: HTTP {response.status_code}: {response.text[:2000]}")
        return response.text

    def collection_elements(self, collection_id: str) -> dict[str, str]:
        """``{element identifier: dataset id}`` of a history dataset collection."""
        collection = self.get(f"dataset_collections/{collection_id}", instance_type="history")
        return {element["element_identifier"]: element["object"]["id"] for element in collection["elements"]}

    def job_metrics(self, job_id: str) -> dict[str, Any]:
        """``{plugin.name: raw value}`` of the job's metrics (admins see every plugin's)."""
        metrics = self.get(f"jobs/{job_id}/metrics")
        return {f"{metric['plugin']}.{metric['name']}": metric["raw_value"] for metric in metrics}
