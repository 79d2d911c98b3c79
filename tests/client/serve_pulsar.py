"""Serve real Pulsar (pulsar-app) on a free loopback port: ``python serve_pulsar.py APP_YML``.

pulsar-app's own launcher wants gunicorn; its WSGI application serves just as well from
paste's threaded HTTP server, which it depends on. Prints ``PORT <n>`` once listening.
"""

import sys

from paste import httpserver
from pulsar.web.wsgi import init_webapp


def main() -> None:
    app = init_webapp(app_conf_path=sys.argv[1])
    server = httpserver.serve(
        app, host="127.0.0.1", port=0, start_loop=False, use_threadpool=True, threadpool_workers=16
    )
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        app.shutdown()


if __name__ == "__main__":
    main()
