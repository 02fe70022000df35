"""Settings from DFD_* environment variables, parsed with typed parsers that fail fast.

`load()` returns one frozen `Settings`; the app factories (`web.create_app`,
`worker.app.create_worker`) call it, nothing reads the environment at import time. A new
setting is one field of `Settings`: its type, default and parser (`setting(...)`);
`tests/test_layout.py` fails on a setting declared twice or read from the environment elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The shipped model: in the source tree, else where the wheel installs it (data files).
MODEL = next((p for p in (ROOT / "models" / "dfd-e2e",
                          Path(sys.prefix) / "share" / "dfd" / "models" / "dfd-e2e")
              if p.is_dir()), ROOT / "models" / "dfd-e2e")
PREFIX = "DFD_"
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Parser = Callable[[str, str], Any]  # (setting name, raw value) -> parsed value


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


def parse_networks(name: str, raw: str) -> bool | tuple[str, ...]:
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


def parse_text(name: str, raw: str) -> str:
    """The value with surrounding blanks removed."""
    return raw.strip()


def parse_path(name: str, raw: str) -> str:
    """A path, ~ expanded."""
    return str(Path(raw).expanduser())


def parse_optional_path(name: str, raw: str) -> str:
    """'' or a path, ~ expanded."""
    return str(Path(raw.strip()).expanduser()) if raw.strip() else ""


def ints(lo: int, hi: int) -> Parser:
    """The parser of an integer in [lo, hi]."""
    return lambda name, raw: parse_int(name, raw, lo, hi)


def floats(lo: float, hi: float) -> Parser:
    """The parser of a number in [lo, hi]."""
    return lambda name, raw: parse_float(name, raw, lo, hi)


def choice(*words: str) -> Parser:
    """The parser of one of these words."""
    return lambda name, raw: parse_choice(name, raw, words)


def optional(parser: Parser) -> Parser:
    """The parser, or None for an empty value."""
    return lambda name, raw: parser(name, raw) if raw.strip() else None


def setting(default: str, parser: Parser) -> Any:
    """One setting's declaration: its default (a string, parsed as the environment's value would
    be) and its parser, kept on the dataclass field."""
    return dataclasses.field(metadata={"default": default, "parser": parser})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, parsed; each field is one setting (DFD_<name> in the environment), declared
    once with its type, default and parser."""

    REDIS_URL: str = setting("redis://127.0.0.1:6379/0", parse_text)
    UPLOAD_DIR: str = setting(str(ROOT / "var" / "uploads"), parse_path)
    RETENTION: float = setting("1h", parse_duration)
    JOB_TTL: float = setting("24h", parse_duration)
    FEEDBACK_TTL: float = setting("90d", parse_duration)
    QUEUE_DEADLINE: float = setting("5m", parse_duration)
    UPLOAD_LIMIT: str = setting("5/minute", parse_rate)
    # Refused requests (wrong type, bad field) have their own, higher allowance (web.allowance).
    REFUSAL_LIMIT: str = setting("30/minute", parse_rate)
    STATUS_LIMIT: str = setting("1200/minute", parse_rate)
    API_KEYS: dict[str, dict[str, str]] = setting("", parse_api_keys)
    REQUIRE_API_KEY: bool = setting("false", parse_bool)
    TRUSTED_PROXIES: int = setting("0", ints(0, 10))
    MAX_UPLOAD_MB: float = setting("10", floats(0.01, 1024))
    MAX_FILES: int = setting("20", ints(1, 1000))
    MAX_PIXELS: int = setting("40000000", ints(1, 500_000_000))
    MODEL_PATH: str = setting(str(MODEL), parse_path)
    THRESHOLD: float | None = setting("", optional(floats(0.0, 1.0)))
    DEVICE: str = setting("auto", choice("auto", "cpu", "gpu"))
    BATCH_SIZE: int = setting("8", ints(1, 256))
    PORT: int = setting("5000", ints(1, 65535))
    LOG_FORMAT: str = setting("text", choice("text", "json"))
    METRICS_PORT: int = setting("0", ints(0, 65535))
    C2PA_TRUST_ANCHORS: str = setting("", parse_optional_path)
    WEBHOOK_SECRET: str = setting("", parse_text)
    WEBHOOK_ALLOW_HTTP: bool = setting("false", parse_bool)
    WEBHOOK_ALLOW_PRIVATE: bool = setting("false", parse_bool)
    WEBHOOK_RETRIES: int = setting("6", ints(0, 20))
    WEBHOOK_BACKOFF: float = setting("5s", parse_duration)
    TASK_TIME_LIMIT: int = setting("120", ints(5, 3000))
    # Times a job may be claimed: a job is claimed again only when its worker ran out of time or
    # died on it, so past this it is failed rather than sent again for ever. Also the times the
    # sweep sends a webhook with no outcome again before giving up on it (shared/job_outbox.py).
    MAX_ATTEMPTS: int = setting("3", ints(1, 100))
    # Seconds between sweeps (one across all workers, busy or idle): old uploads deleted, jobs
    # and "Why?" maps whose lease lapsed sent again or failed. Whole seconds: the lock's expiry.
    SWEEP_EVERY: int = setting("60", ints(1, 86400))
    # Video, more stills and links (issue 20). Video uploads have their own size, length and
    # frame-size limits and rate; the worker samples VIDEO_FPS frames a second, at most
    # VIDEO_MAX_FRAMES, decoding in a child process bounded by VIDEO_DECODE_S and _MB.
    VIDEO_MAX_MB: float = setting("200", floats(0.01, 4096))
    VIDEO_MAX_S: float = setting("600", floats(1, 86400))
    VIDEO_MAX_PIXELS: int = setting(str(3840 * 2160), ints(1, 100_000_000))
    VIDEO_LIMIT: str = setting("2/minute", parse_rate)
    VIDEO_FPS: float = setting("1", floats(0.01, 30))
    VIDEO_MAX_FRAMES: int = setting("64", ints(1, 1000))
    VIDEO_DECODE_S: float = setting("60", floats(1, 3000))
    VIDEO_DECODE_MB: int = setting("2048", ints(256, 65536))
    # Links (url=): fetched over https from public addresses only, unless these (tests, closed
    # networks) say otherwise.
    FETCH_ALLOW_HTTP: bool = setting("false", parse_bool)
    # False, True, or a tuple of allowed networks (parse_networks).
    FETCH_ALLOW_PRIVATE: bool | tuple[str, ...] = setting("false", parse_networks)
    FETCH_TIMEOUT: float = setting("10s", parse_duration)
    # The CAs links' certificates are checked against: certifi's public ones, or this PEM file
    # (a closed network's own CA; the tests' throwaway one).
    FETCH_CA_FILE: str = setting("", parse_ca_file)

    def replace(self, **changes) -> Settings:
        """A copy with some settings changed (already parsed values; for tests)."""
        return dataclasses.replace(self, **changes)


# name -> (default, parser), read off the fields (the compose test checks dfd.env against it).
SPEC: Mapping[str, tuple[str, Parser]] = MappingProxyType({
    f.name: (f.metadata["default"], f.metadata["parser"]) for f in dataclasses.fields(Settings)})


def read(name: str, env: Mapping[str, str] | None = None):
    """One setting, parsed, from env (default os.environ): for a command that needs only it."""
    default, parser = SPEC[name]
    return parser(name, (os.environ if env is None else env).get(PREFIX + name, default))


def load(env: Mapping[str, str] | None = None) -> Settings:
    """All settings, parsed, from env (default os.environ); raises SettingsError on a bad value."""
    env = os.environ if env is None else env
    out = Settings(**{name: read(name, env) for name in SPEC})
    if out.REQUIRE_API_KEY and not out.API_KEYS:
        raise SettingsError(f"{PREFIX}REQUIRE_API_KEY is on but {PREFIX}API_KEYS is empty: "
                            "nobody could upload; set keys or turn it off")
    if out.WEBHOOK_SECRET and len(out.WEBHOOK_SECRET) < 16:
        raise SettingsError(f"{PREFIX}WEBHOOK_SECRET: use 16 or more characters")
    return out
