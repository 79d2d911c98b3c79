"""Run Pulsar's own client check (``pulsar.client.test.check.run``) in message-queue mode.

Usage: python pulsar_mq_check.py AMQP_URL JOBS_DIRECTORY FILES_ENDPOINT JOB_ID
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from pulsar.client.test.check import run


def main(argv: list[str]) -> None:
    amqp_url, jobs_directory, files_endpoint, job_id = argv
    options = SimpleNamespace(
        manager_url=amqp_url,
        default_file_action="remote_transfer",
        jobs_directory=jobs_directory,
        files_endpoint=files_endpoint,
        job_id=job_id,
        suppress_output=False,
        cleanup=True,
        test_errors=False,
        explicit_tool_declarations=False,
        legacy_galaxy_json=False,
    )
    run(options)
    print("pulsar client check passed")


if __name__ == "__main__":
    main(sys.argv[1:])
