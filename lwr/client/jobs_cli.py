"""``lwr jobs list|show|timeline|redeliver|retry-postprocessing|forget``: the admin API from a shell.

Answers "where is job 4711 and why is it stuck" and repairs it, over lwr's own HTTP client
(same ``--url``/``--private-token``/``LWR_URL``/``LWR_PRIVATE_TOKEN`` as the other commands).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from typing import Any

from lwr.client.http import HttpTransport
from lwr.client.token_file import add_token_arguments, token_from_args


def register(subparsers: Any) -> None:
    jobs = subparsers.add_parser("jobs", help="list, inspect and repair the jobs a server holds (admin)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)

    listing = actions.add_parser("list", help="jobs the server holds, oldest first")
    _connection(listing)
    listing.add_argument("--state", help="only these states, comma-separated (e.g. failed,lost)")
    listing.add_argument("--min-age", help="only jobs unchanged for at least this long (e.g. 2h)")
    listing.add_argument("--max-age", help="only jobs changed within this long (e.g. 7d)")
    listing.add_argument("--limit", type=int, default=100, help="jobs per request (default 100)")
    listing.add_argument("--all", action="store_true", help="follow the pages to the end")
    listing.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    listing.set_defaults(func=list_command)

    for name, function, text in (
        ("show", show_command, "one job's record (JSON)"),
        ("timeline", timeline_command, "every state change of a job, with staging and delivery"),
        ("redeliver", redeliver_command, "announce a job's final status again (AMQP)"),
        ("retry-postprocessing", retry_command, "deliver a job's outputs again after a failed delivery"),
        ("forget", forget_command, "drop a job: record, timeline and directory (an active job is cancelled)"),
    ):
        parser = actions.add_parser(name, help=text)
        _connection(parser)
        parser.add_argument("job_id", metavar="JOB")
        if name == "timeline":
            parser.add_argument("--json", action="store_true", help="print the raw JSON")
        parser.set_defaults(func=function)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=os.environ.get("LWR_URL"), required="LWR_URL" not in os.environ, help="server URL"
    )
    add_token_arguments(parser, environment=True)
    parser.add_argument("--manager", help="a named job manager of the server")


def _transport(args: argparse.Namespace, per_manager: bool = True) -> HttpTransport:
    return HttpTransport(
        args.url,
        private_token=token_from_args(args),
        manager=args.manager if per_manager else None,
        ca_certs=args.ca_certs,
    )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def list_command(args: argparse.Namespace) -> int:
    transport = _transport(args, per_manager=False)
    params: dict[str, Any] = {
        "manager": args.manager,
        "state": args.state,
        "min_age": args.min_age,
        "max_age": args.max_age,
        "limit": args.limit,
    }
    rows: list[dict[str, Any]] = []
    try:
        while True:
            page = transport.json("GET", "jobs", params, idempotent=True)
            rows.extend(page["jobs"])
            if not args.all or not page.get("next"):
                break
            params["after"] = page["next"]
    finally:
        transport.close()
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    print(f"{'JOB':<34} {'MANAGER':<12} {'STATE':<15} {'UPDATED (UTC)':<20} {'BATCH ID':<12} REASON")
    for row in rows:
        print(
            f"{row['id']:<34} {row['manager']:<12} {row['state']:<15} {_when(row.get('updated')):<20} "
            f"{row.get('batch_id') or '-':<12} {row.get('reason') or ''}"
        )
    return 0


def _job_call(args: argparse.Namespace, method: str, suffix: str) -> Any:
    transport = _transport(args)
    try:
        return transport.json(method, f"jobs/{args.job_id}{suffix}", idempotent=method == "GET")
    finally:
        transport.close()


def show_command(args: argparse.Namespace) -> int:
    print(json.dumps(_job_call(args, "GET", ""), indent=2, sort_keys=True))
    return 0


def timeline_command(args: argparse.Namespace) -> int:
    timeline = _job_call(args, "GET", "/timeline")
    if args.json:
        print(json.dumps(timeline, indent=2, sort_keys=True))
        return 0
    print(
        f"job {timeline['id']} on {timeline['manager']}: {timeline['state']}"
        f"{' (' + timeline['reason'] + ')' if timeline.get('reason') else ''}"
    )
    print(
        f"batch id {timeline.get('batch_id') or '-'}, postprocessing retries {timeline.get('retries', 0)}, "
        f"final status delivered: {_delivered(timeline.get('final_status_delivered'))}"
    )
    for event in timeline["events"]:
        details = {key: value for key, value in event.items() if key not in ("at", "state")}
        what = (
            event.get("state") or event.get("action") or ("batch id" if "external_id" in event else "event")
        )
        extra = " ".join(
            f"{key}={json.dumps(value, sort_keys=True)}" for key, value in details.items() if key != "action"
        )
        print(f"  {_when(event.get('at'))}  {what:<15} {extra}")
    return 0


def _delivered(value: bool | None) -> str:
    return "n/a (HTTP)" if value is None else ("yes" if value else "NO")


def redeliver_command(args: argparse.Namespace) -> int:
    reply = _job_call(args, "POST", "/redeliver")
    print(f"final status {reply['redelivered']} of {args.job_id} announced again")
    return 0


def retry_command(args: argparse.Namespace) -> int:
    reply = _job_call(args, "POST", "/retry_postprocessing")
    print(f"postprocessing of {args.job_id} retried (retry {reply['retries']})")
    return 0


def forget_command(args: argparse.Namespace) -> int:
    _job_call(args, "POST", "/forget")
    print(f"forgot {args.job_id}")
    return 0
