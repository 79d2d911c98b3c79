"""lwr's client files endpoint in a process of its own, so a test can watch that process's memory.

``python files_endpoint_process.py OUTPUT``: serves one job whose one output is ``OUTPUT``,
prints the job's files URL, and serves until its stdin closes.
"""

from __future__ import annotations

import sys

from lwr.client.files_endpoint import FilesEndpoint

if __name__ == "__main__":
    with FilesEndpoint() as endpoint:
        endpoint.allow_write(files=[sys.argv[1]])
        print(endpoint.url("1"), flush=True)
        sys.stdin.read()
