"""Upload storage: generated names under one folder, never the client's name; deleted when
the job is final, and swept by age as a safety net."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from shared import formats


# The only names the service writes: 32 hex characters and the suffix of a format it takes
# (shared/formats), or the temporary file that becomes one. The sweep touches nothing else, so
# a shared folder is never emptied.
def _any() -> str:
    return "|".join(re.escape(s) for s in formats.stored_suffixes())


def is_stored_name(name: str) -> bool:
    """A name this service gives an upload."""
    return re.fullmatch(rf"[0-9a-f]{{32}}({_any()})", name) is not None


def _is_part(name: str) -> bool:
    return re.fullmatch(rf"\.[0-9a-f]{{32}}({_any()})\.part", name) is not None


class Storage:
    """Files under root named by random tokens; the web writes them, the worker reads them."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def save(self, data: bytes, suffix: str) -> str:
        """Store bytes under a fresh random name; returns that name (not a path)."""
        if suffix not in formats.stored_suffixes():
            raise ValueError(f"unexpected suffix {suffix!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        name = secrets.token_hex(16) + suffix
        tmp = self.root / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / name)  # atomic: a worker never sees half a file
        return name

    def path(self, name: str) -> Path:
        """The path of a stored name; refuses anything that is not one of our generated names."""
        if not is_stored_name(name):
            raise ValueError(f"not a stored upload name: {name!r}")
        return self.root / name

    def read(self, name: str) -> bytes:
        """The stored bytes; FileNotFoundError if swept or deleted."""
        return self.path(name).read_bytes()

    def delete(self, name: str) -> None:
        """Remove a stored upload if it is still there."""
        self.path(name).unlink(missing_ok=True)

    def sweep(self, older_than: float, now: float | None = None) -> int:
        """Delete uploads older than older_than seconds; returns how many were removed.

        A safety net: each upload is deleted when its job is final. Only names this service
        generated are removed; any other file in the folder is left alone.
        """
        if not self.root.is_dir():
            return 0
        cutoff = (time.time() if now is None else now) - older_than
        removed = 0
        for entry in os.scandir(self.root):
            try:
                ours = is_stored_name(entry.name) or _is_part(entry.name)
                if ours and entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # another process swept it first
        return removed
