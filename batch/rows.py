"""Result rows of `dfd submit`: which images to send, one row per image, JSONL or CSV files."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from shared import formats

COLUMNS = ("path", "job_id", "status", "assessment", "reasons", "label", "confidence", "p_fake",
           "faces", "model_version", "error")


def path_key(path: str | os.PathLike) -> str:
    """Identity of an image file for de-duplication and resume, independent of the cwd."""
    return os.path.realpath(os.fspath(path))


def collect_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Return the photo and video files named or found (recursively) under paths, sorted,
    unique."""
    found: dict[str, Path] = {}
    # What a folder search picks up: the names of the formats the service takes (it decides by
    # content; a file named on the command line is always sent).
    suffixes = set(formats.file_names())
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            candidates: Iterable[Path] = (p for p in root.rglob("*") if p.is_file())
        elif root.is_file():
            candidates = [root]
        else:
            raise FileNotFoundError(f"{raw}: no such file or directory")
        for path in candidates:
            if path.suffix.lower() in suffixes:
                found.setdefault(path_key(path), path)
    return sorted(found.values(), key=str)


def make_row(path: Path | str, job_id: str = "", error: str = "", result: dict | None = None):
    """One output row: done when a result is given, else failed with the error."""
    row = dict.fromkeys(COLUMNS) | {"path": str(path), "job_id": job_id}
    if result is None:
        return row | {"status": "failed", "error": error or "failed"}
    # Nothing judged, nothing labelled: the page hides the seed's label then, and so does the row
    # (a video whose face was too small used to read "Real, 0.93" here).
    judged = result.get("assessment") != "not_applicable"
    return row | {"status": "done", "assessment": result.get("assessment"),
                  # One cell, also in CSV: the short codes, space-separated.
                  "reasons": " ".join(result.get("reasons") or []),
                  "label": result.get("label") if judged else None, "error": "",
                  "confidence": result.get("confidence") if judged else None,
                  "p_fake": result.get("p_fake") if judged else None,
                  "faces": len(result.get("faces") or []),
                  "model_version": (result.get("model") or {}).get("version")}


def row_from_job(path: Path | str, job: dict) -> dict:
    """Turn a final job document from GET /api/v1/jobs/<id> into an output row."""
    job_id = str(job.get("id") or "")
    if job.get("status") == "done" and isinstance(job.get("result"), dict):
        return make_row(path, job_id, result=job["result"])
    return make_row(path, job_id, error=str(job.get("error") or f"job {job.get('status')}"))


def read_rows(path: str | os.PathLike, fmt: str) -> list[dict]:
    """Parse an earlier output file, skipping lines a crash left half-written."""
    rows: list[dict] = []
    with open(path, newline="", encoding="utf-8") as fh:
        if fmt == "csv":
            for row in csv.DictReader(fh):
                # A truncated last line leaves columns missing (None) and cannot be trusted.
                if all(row.get(c) is not None for c in COLUMNS):
                    rows.append(row)
            return rows
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "path" in row:
                rows.append(row)
    return rows


def load_done(path: str | os.PathLike, fmt: str) -> set[str]:
    """path_key of every image that already has a done row in an earlier output file."""
    if not os.path.exists(path):
        return set()
    return {path_key(r["path"]) for r in read_rows(path, fmt) if r.get("status") == "done"}


class RowWriter:
    """Appends rows as JSONL or CSV, flushing each so an interrupted run can resume."""

    def __init__(self, stream: IO[str], fmt: str, header: bool = True, owns: bool = False):
        self.stream, self.fmt, self.owns = stream, fmt, owns
        self._csv = csv.DictWriter(stream, COLUMNS) if fmt == "csv" else None
        if self._csv is not None and header:
            self._csv.writeheader()

    @classmethod
    def append_to(cls, path: str | os.PathLike, fmt: str) -> RowWriter:
        """Open path for appending; the CSV header is written only to a new or empty file."""
        size = os.path.getsize(path) if os.path.exists(path) else 0
        needs_newline = False
        if size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) not in (b"\n", b"\r")
        stream = open(path, "a", newline="", encoding="utf-8")  # closed by close()
        if needs_newline:  # keep a half-written last line from swallowing our first row
            stream.write("\n")
        return cls(stream, fmt, header=size == 0, owns=True)

    def write(self, row: dict) -> None:
        """Write one row and flush it."""
        if self._csv is not None:
            self._csv.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
        else:
            self.stream.write(json.dumps({k: row.get(k) for k in COLUMNS}) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Close the file if this writer opened it (stdout stays open)."""
        if self.owns:
            self.stream.close()
