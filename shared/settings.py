"""Settings from DFD_* environment variables, parsed with typed parsers that fail fast.

`load()` returns one frozen `Settings`; the app factories (`web.create_app`,
`worker.app.create_worker`) call it, nothing reads the environment at import time. A new
setting is one line in SPEC (its default and parser) and one typed field in `Settings` of the
same name; `tests/test_shared.py` checks that the two list the same names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The shipped model: in the source tree, else where the wheel installs it (data files).
MODEL = next((p for p in (ROOT / "models" / "dfd-clip",
                          Path(sys.prefix) / "share" / "dfd" / "models" / "dfd-clip")
              if p.is_dir()), ROOT / "models" / "dfd-clip")
PREFIX = "DFD_"
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the fix."""


def parse_duration(name: str, raw: str) -> float:
    """Seconds from '90', '90s', '15m', '2h' or '1d'."""
    m = _DURATION.match(raw)
    if not m:
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected a duration like 90, 15m, 2h or 1d")
    return float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]


def _parse_number(name: str, raw: str, kind: type, lo, hi):
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected {what}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{PREFIX}{name}={value}: must be between {lo} and {hi}")
    return value


def parse_int(name: str, raw: str, lo: int = 0, hi: int = 2**31) -> int:
    """An integer in [lo, hi]."""
    return _parse_number(name, raw, int, lo, hi)


def parse_float(name: str, raw: str, lo: float, hi: float) -> float:
    """A float in [lo, hi]."""
    return _parse_number(name, raw, float, lo, hi)


def parse_rate(name: str, raw: str) -> str:
    """A Flask-Limiter rate such as '5/minute' or '100 per hour'."""
    if not _RATE.match(raw):
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected a rate like 5/minute or 100/hour")
    return raw.strip()


def parse_api_keys(name: str, raw: str) -> dict[str, dict[str, str]]:
    """'name:key[:rate],...' -> {key: {"name": name, "limit": rate}}."""
    keys: dict[str, dict[str, str]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = item.split(":", 2)
        if len(parts) < 2 or not parts[0] or len(parts[1]) < 16:
            raise SettingsError(
                f"{PREFIX}{name}: each entry is name:key[:rate] with a key of 16+ characters "
                f"(got an entry starting {parts[0][:12]!r})"
            )
        rate = parse_rate(name, parts[2]) if len(parts) == 3 else "600/minute"
        keys[parts[1]] = {"name": parts[0], "limit": rate}
    return keys


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of words."""
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected one of {', '.join(choices)}")
    return value


def parse_bool(name: str, raw: str) -> bool:
    """true/false, yes/no, on/off or 1/0."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{PREFIX}{name}={raw!r}: expected true or false")


def parse_networks(name: str, raw: str):
    """true/false, or a comma list of CIDR networks (such as 10.0.0.0/8,127.0.0.2/32)."""
    import ipaddress

    if raw.strip().lower() in ("0", "1", "true", "false", "yes", "no", "on", "off", ""):
        return parse_bool(name, raw)
    try:
        return tuple(str(ipaddress.ip_network(part.strip(), strict=False))
                     for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected true, false or a comma list of "
                            "networks like 10.0.0.0/8") from None


def parse_ca_file(name: str, raw: str) -> str:
    """'' (the public CAs, certifi's) or a readable PEM file of extra trust anchors."""
    if not raw.strip():
        return ""
    path = Path(raw.strip()).expanduser()
    if not path.is_file() or b"-----BEGIN CERTIFICATE-----" not in path.read_bytes()[:1 << 20]:
        raise SettingsError(f"{PREFIX}{name}={raw!r}: expected a PEM file of CA certificates")
    return str(path)


# name -> (default, parser). Defaults are strings so that they go through the same parser.
SPEC = {
    "REDIS_URL": ("redis://127.0.0.1:6379/0", lambda n, r: r.strip()),
    "UPLOAD_DIR": (str(ROOT / "var" / "uploads"), lambda n, r: str(Path(r).expanduser())),
    "RETENTION": ("1h", parse_duration),
    "JOB_TTL": ("24h", parse_duration),
    "FEEDBACK_TTL": ("90d", parse_duration),
    "QUEUE_DEADLINE": ("5m", parse_duration),
    "UPLOAD_LIMIT": ("5/minute", parse_rate),
    # Refused requests (wrong type, bad field) have their own, higher allowance (web.allowance).
    "REFUSAL_LIMIT": ("30/minute", parse_rate),
    "STATUS_LIMIT": ("1200/minute", parse_rate),
    "API_KEYS": ("", parse_api_keys),
    "REQUIRE_API_KEY": ("false", parse_bool),
    "TRUSTED_PROXIES": ("0", lambda n, r: parse_int(n, r, 0, 10)),
    "MAX_UPLOAD_MB": ("10", lambda n, r: parse_float(n, r, 0.01, 1024)),
    "MAX_FILES": ("20", lambda n, r: parse_int(n, r, 1, 1000)),
    "MAX_PIXELS": ("40000000", lambda n, r: parse_int(n, r, 1, 500_000_000)),
    "MODEL_PATH": (str(MODEL), lambda n, r: str(Path(r).expanduser())),
    "THRESHOLD": ("", lambda n, r: parse_float(n, r, 0.0, 1.0) if r.strip() else None),
    "DEVICE": ("auto", lambda n, r: parse_choice(n, r, ("auto", "cpu", "gpu"))),
    "BATCH_SIZE": ("8", lambda n, r: parse_int(n, r, 1, 256)),
    "PORT": ("5000", lambda n, r: parse_int(n, r, 1, 65535)),
    "LOG_FORMAT": ("text", lambda n, r: parse_choice(n, r, ("text", "json"))),
    "METRICS_PORT": ("0", lambda n, r: parse_int(n, r, 0, 65535)),
    "C2PA_TRUST_ANCHORS": ("", lambda n, r: str(Path(r.strip()).expanduser()) if r.strip()
                           else ""),
    "WEBHOOK_SECRET": ("", lambda n, r: r.strip()),
    "WEBHOOK_ALLOW_HTTP": ("false", parse_bool),
    "WEBHOOK_ALLOW_PRIVATE": ("false", parse_bool),
    "WEBHOOK_RETRIES": ("6", lambda n, r: parse_int(n, r, 0, 20)),
    "WEBHOOK_BACKOFF": ("5s", parse_duration),
    "TASK_TIME_LIMIT": ("120", lambda n, r: parse_int(n, r, 5, 3000)),
    # Video, more stills and links (issue 20). Video uploads have their own size, length and
    # frame-size limits and rate; the worker samples VIDEO_FPS frames a second, at most
    # VIDEO_MAX_FRAMES, decoding in a child process bounded by VIDEO_DECODE_S and _MB.
    "VIDEO_MAX_MB": ("200", lambda n, r: parse_float(n, r, 0.01, 4096)),
    "VIDEO_MAX_S": ("600", lambda n, r: parse_float(n, r, 1, 86400)),
    "VIDEO_MAX_PIXELS": (str(3840 * 2160), lambda n, r: parse_int(n, r, 1, 100_000_000)),
    "VIDEO_LIMIT": ("2/minute", parse_rate),
    "VIDEO_FPS": ("1", lambda n, r: parse_float(n, r, 0.01, 30)),
    "VIDEO_MAX_FRAMES": ("64", lambda n, r: parse_int(n, r, 1, 1000)),
    "VIDEO_DECODE_S": ("60", lambda n, r: parse_float(n, r, 1, 3000)),
    "VIDEO_DECODE_MB": ("2048", lambda n, r: parse_int(n, r, 256, 65536)),
    # Links (url=): fetched over https from public addresses only, unless these (tests, closed
    # networks) say otherwise.
    "FETCH_ALLOW_HTTP": ("false", parse_bool),
    "FETCH_ALLOW_PRIVATE": ("false", parse_networks),
    "FETCH_TIMEOUT": ("10s", parse_duration),
    # The CAs links' certificates are checked against: certifi's public ones, or this PEM file
    # (a closed network's own CA; the tests' throwaway one).
    "FETCH_CA_FILE": ("", parse_ca_file),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, parsed; each field is named as in SPEC (DFD_<name> in the environment)."""

    REDIS_URL: str
    UPLOAD_DIR: str
    RETENTION: float
    JOB_TTL: float
    FEEDBACK_TTL: float
    QUEUE_DEADLINE: float
    UPLOAD_LIMIT: str
    REFUSAL_LIMIT: str
    STATUS_LIMIT: str
    API_KEYS: dict[str, dict[str, str]]
    REQUIRE_API_KEY: bool
    TRUSTED_PROXIES: int
    MAX_UPLOAD_MB: float
    MAX_FILES: int
    MAX_PIXELS: int
    MODEL_PATH: str
    THRESHOLD: float | None
    DEVICE: str
    BATCH_SIZE: int
    PORT: int
    LOG_FORMAT: str
    METRICS_PORT: int
    C2PA_TRUST_ANCHORS: str
    WEBHOOK_SECRET: str
    WEBHOOK_ALLOW_HTTP: bool
    WEBHOOK_ALLOW_PRIVATE: bool
    WEBHOOK_RETRIES: int
    WEBHOOK_BACKOFF: float
    TASK_TIME_LIMIT: int
    VIDEO_MAX_MB: float
    VIDEO_MAX_S: float
    VIDEO_MAX_PIXELS: int
    VIDEO_LIMIT: str
    VIDEO_FPS: float
    VIDEO_MAX_FRAMES: int
    VIDEO_DECODE_S: float
    VIDEO_DECODE_MB: int
    FETCH_ALLOW_HTTP: bool
    FETCH_ALLOW_PRIVATE: object  # False, True, or a tuple of allowed networks (parse_networks)
    FETCH_TIMEOUT: float
    FETCH_CA_FILE: str

    def replace(self, **changes) -> Settings:
        """A copy with some settings changed (already parsed values; for tests)."""
        return dataclasses.replace(self, **changes)


def load(env: Mapping[str, str] | None = None) -> Settings:
    """All settings, parsed, from env (default os.environ); raises SettingsError on a bad value."""
    env = os.environ if env is None else env
    out = Settings(**{name: parser(name, env.get(PREFIX + name, default))
                      for name, (default, parser) in SPEC.items()})
    if out.REQUIRE_API_KEY and not out.API_KEYS:
        raise SettingsError(f"{PREFIX}REQUIRE_API_KEY is on but {PREFIX}API_KEYS is empty: "
                            "nobody could upload; set keys or turn it off")
    if out.WEBHOOK_SECRET and len(out.WEBHOOK_SECRET) < 16:
        raise SettingsError(f"{PREFIX}WEBHOOK_SECRET: use 16 or more characters")
    return out
