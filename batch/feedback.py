"""`dfd feedback export`: every "this verdict is wrong" entry of a server, as JSONL."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from batch.client import ApiClient, ApiError

PAGE = 1000  # entries per request: the export route's default page


def add_parser(sub) -> None:
    """The `feedback` command and its `export` subcommand."""
    feedback = sub.add_parser("feedback", help="review verdict feedback (needs an API key)",
                              description="Work with the feedback users sent on verdicts.")
    actions = feedback.add_subparsers(dest="action", metavar="ACTION")
    export = actions.add_parser("export", help="write every feedback entry as JSONL",
                                description="Write every feedback entry, oldest first, one "
                                            "JSON object per line.")
    export.add_argument("--out", type=Path, help="output file (default: stdout)")
    export.add_argument("--url", default=os.environ.get("DFD_URL", "http://127.0.0.1:5000"),
                        help="server base URL (env DFD_URL; default %(default)s)")
    export.add_argument("--api-key", default=os.environ.get("DFD_API_KEY"),
                        help="API key sent as a Bearer token (env DFD_API_KEY); required")


def run(args: argparse.Namespace) -> int:
    """Run `dfd feedback export`; 0 on success, 1 when the server refuses, 2 on usage errors."""
    if args.action != "export":
        print("usage: dfd feedback export [--out FILE] [--url URL] [--api-key KEY]",
              file=sys.stderr)
        return 2
    if not args.api_key:
        print("dfd feedback export: an API key is required (--api-key or DFD_API_KEY)",
              file=sys.stderr)
        return 2
    client = ApiClient(args.url, args.api_key)
    rows: list[dict] = []
    offset = 0
    try:
        while True:
            page = client.request("GET", f"/api/v1/feedback?limit={PAGE}&offset={offset}",
                                  "status", timeout=30)
            got = page.get("feedback") or []
            rows += got
            offset += len(got)
            if not got or offset >= int(page.get("total", 0)):
                break
    except ApiError as exc:
        print(f"dfd feedback export: {exc}", file=sys.stderr)
        return 1
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if args.out:
        args.out.write_text(text)
        print(f"{len(rows)} feedback entries -> {args.out}")
    else:
        sys.stdout.write(text)
    return 0
