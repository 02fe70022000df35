"""The `dfd` command, for users of a running service: `submit` images and collect verdicts,
`feedback export` the feedback users sent on them."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from batch import feedback
from batch.client import ApiClient, ApiError
from batch.rows import RowWriter, collect_images, load_done, path_key
from shared.schema import ASSESSMENTS


def output_format(out: str | os.PathLike | None, explicit: str | None = None) -> str:
    """jsonl or csv: the explicit choice, else from the --out suffix, else jsonl."""
    if explicit:
        return explicit
    return "csv" if out is not None and Path(out).suffix.lower() == ".csv" else "jsonl"


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `dfd`."""
    parser = argparse.ArgumentParser(prog="dfd", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    submit = sub.add_parser("submit", help="send images to a server and collect the verdicts",
                            description="Send images to a server and write one row per image.")
    submit.add_argument("paths", nargs="+", metavar="PATH",
                        help="photo or video files, or folders (searched recursively)")
    submit.add_argument("--url", default=os.environ.get("DFD_URL", "http://127.0.0.1:5000"),
                        help="server base URL (env DFD_URL; default %(default)s)")
    submit.add_argument("--api-key", default=os.environ.get("DFD_API_KEY"),
                        help="API key sent as a Bearer token (env DFD_API_KEY)")
    submit.add_argument("--out", type=Path, help="output file; if it exists, done images are "
                        "skipped and new rows appended (default: stdout)")
    submit.add_argument("--format", choices=("jsonl", "csv"),
                        help="output format (default: from the --out suffix, else jsonl)")
    submit.add_argument("--workers", type=_positive(int), default=4,
                        help="images in flight at once (default %(default)s)")
    submit.add_argument("--timeout", type=_positive(float), default=300.0,
                        help="seconds to wait for each job's result (default %(default)g)")
    submit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    feedback.add_parser(sub)
    return parser


def _exit_code(exc: SystemExit) -> int:
    # main() returns codes instead of exiting; sys.exit("text") means: print it, exit 1.
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _usage_error(args: argparse.Namespace) -> tuple[list[Path], str | None]:
    """The images to send, and what is wrong with the command line (None when nothing)."""
    try:
        images = collect_images(args.paths)
    except FileNotFoundError as exc:
        return [], str(exc)
    if not images:
        return [], "no photos or videos found"
    if not args.url.startswith(("http://", "https://")):
        return [], f"--url must start with http:// or https://: {args.url}"
    return images, None


def _probe(client: ApiClient, url: str) -> int | None:
    """One cheap request, so a wrong URL or key is one error rather than a failed row per
    image; the exit code to stop with, or None to go on."""
    try:
        client.request("GET", f"/api/v1/jobs/{'0' * 32}", "status", timeout=10)
    except ApiError as exc:
        if exc.status == 401:
            print(f"dfd submit: {exc}", file=sys.stderr)
            return 2
        if exc.status != 404:  # 404 is the expected answer for this made-up job id
            print(f"dfd submit: cannot use {url}: {exc}", file=sys.stderr)
            return 1
    return None


# The assessments in the page's words, in the order a summary gives them.
WORDS = {"likely_real": "likely real", "uncertain": "can't tell", "likely_fake": "likely fake",
         "not_applicable": "not a face photo we can judge"}


def _count(counts: Counter, row: dict, client: ApiClient, bar: tqdm) -> None:
    """Tally one finished row and show the tallies on the progress bar."""
    counts[row["status"]] += 1
    if row["status"] == "done":
        counts[str(row.get("label") or "").lower()] += 1
        counts[f"assessment:{row.get('assessment')}"] += 1
    # The assessments lead, as on the page: the label alone is not the verdict.
    postfix = {WORDS[a]: counts[f"assessment:{a}"] for a in ASSESSMENTS[:3]}
    postfix["failed"] = counts["failed"]
    if client.rate_limited:  # says why the bar stalls when the server throttles us
        postfix["429s"] = client.rate_limited
    bar.set_description_str("", refresh=False)  # clears "waiting N s for the upload limit"
    bar.set_postfix(postfix, refresh=False)
    bar.update()


def _summary(counts: Counter, out: Path | None, skipped: int) -> str:
    """'12 done: 2 likely real, 7 can't tell, 3 likely fake (labels: 9 Real, 3 Fake), 1 failed
    -> out.csv': the assessments first, every one named even at 0; the labels after them."""
    assessed = ", ".join(f"{counts[f'assessment:{a}']} {WORDS.get(a, a)}" for a in ASSESSMENTS
                         if counts[f"assessment:{a}"] or a != "not_applicable")
    summary = (f"{counts['done']} done: {assessed} (labels: {counts['real']} Real, "
               f"{counts['fake']} Fake), {counts['failed']} failed -> {out or 'stdout'}")
    return summary + (f" ({skipped} already done, skipped)" if skipped else "")


def _send_all(client: ApiClient, todo: list[Path], args: argparse.Namespace,
              writer: RowWriter, counts: Counter) -> bool:
    """Process every image on a thread pool, writing rows as they come; False if interrupted."""
    # disable=None lets tqdm hide itself when stderr is not a terminal (logs, CI).
    bar = tqdm(total=len(todo), unit="img", file=sys.stderr,
               disable=True if args.no_progress else None, dynamic_ncols=True)
    client.on_wait = lambda kind, s: _waiting(bar, kind, s)
    pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="dfd-submit")
    try:
        futures = [pool.submit(client.process, path, args.timeout) for path in todo]
        for future in as_completed(futures):
            row = future.result()
            if args.out:
                writer.write(row)
            else:  # rows and the bar share the terminal: clear the bar around each row
                with tqdm.external_write_mode(file=sys.stdout):
                    writer.write(row)
            _count(counts, row, client, bar)
    except KeyboardInterrupt:
        client.stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)
        return False
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return True


def run_submit(args: argparse.Namespace) -> int:
    """Run `dfd submit`; returns 0 when every image is done, 1 if any failed, 2 on usage errors."""
    images, problem = _usage_error(args)
    if problem:
        print(f"dfd submit: {problem}", file=sys.stderr)
        return 2
    client = ApiClient(args.url, args.api_key)
    stop = _probe(client, args.url)
    if stop is not None:
        return stop
    fmt = output_format(args.out, args.format)
    done_before = load_done(args.out, fmt) if args.out else set()
    todo = [p for p in images if path_key(p) not in done_before]
    writer = RowWriter.append_to(args.out, fmt) if args.out else RowWriter(sys.stdout, fmt)
    counts: Counter[str] = Counter()
    try:
        finished = _send_all(client, todo, args, writer, counts)
    finally:
        writer.close()
    if not finished:
        print("dfd submit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    # With rows on stdout the summary goes to stderr, so stdout stays machine-readable.
    print(_summary(counts, args.out, len(images) - len(todo)),
          file=sys.stdout if args.out else sys.stderr)
    return 1 if counts["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dfd` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return _exit_code(exc)
    if args.command == "feedback":
        return feedback.run(args)
    if args.command != "submit":
        parser.print_help(sys.stderr)
        return 2
    return run_submit(args)


if __name__ == "__main__":
    sys.exit(main())


def _waiting(bar, kind: str, seconds: float) -> None:
    """Say on the progress line (or stderr, without one) why nothing moves: a 429 wait."""
    what = "upload limit" if kind == "upload" else f"{kind} limit"
    text = f"waiting {math.ceil(seconds)} s for the {what}"
    if bar.disable:
        print(f"dfd submit: {text}", file=sys.stderr, flush=True)
    else:
        bar.set_description_str(text)
