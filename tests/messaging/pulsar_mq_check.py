"""Run Pulsar's own client check (``pulsar.client.test.check.run``) in message-queue mode.

Usage: python pulsar_mq_check.py AMQP_URL JOBS_DIRECTORY FILES_ENDPOINT JOB_ID [ACK_PERSISTENCE_DIRECTORY]

With a fifth argument the client uses the acknowledgement protocol (``amqp_acknowledge``),
keeping its uuid stores in that directory, as Galaxy does when so configured.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from pulsar.client.coexecution_manager import build_client_manager
from pulsar.client.test import check


def main(argv: list[str]) -> None:
    amqp_url, jobs_directory, files_endpoint, job_id = argv[:4]
    if len(argv) > 4:
        persistence_directory = argv[4]

        def client_manager_from_args(options: SimpleNamespace) -> object:
            manager = build_client_manager(
                amqp_url=options.manager_url,
                amqp_acknowledge=True,
                persistence_directory=persistence_directory,
            )
            manager.ensure_has_ack_consumers()
            return manager

        check.client_manager_from_args = client_manager_from_args
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
    check.run(options)
    print("pulsar client check passed")


if __name__ == "__main__":
    main(sys.argv[1:])
