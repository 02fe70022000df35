"""Webhooks: which callback URLs are allowed (no server-side request forgery), and the signature.

The signature is HMAC-SHA256 with DFD_WEBHOOK_SECRET over "<timestamp>." + the raw body, sent as
`X-DFD-Signature: t=<timestamp>,v1=<hex>`; `verify` is the receiver's side (docs/API.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from shared.errors import InputError

WEBHOOK = "dfd.webhook"  # the Celery task that delivers one job's callback
MAX_URL = 2000


class CallbackError(InputError):
    """A callback URL we refuse; the message says why (400 bad_request)."""

    def __init__(self, message: str):
        super().__init__("bad_request", message)


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> str:
    """The URL if it may be called; CallbackError otherwise. Resolves the host (DNS) to refuse
    private, loopback, link-local and other internal addresses unless allow_private."""
    if len(url) > MAX_URL:
        raise CallbackError(f"callback_url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackError("callback_url is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CallbackError("callback_url must be an https:// URL with a host")
    if parts.scheme == "http" and not allow_http:
        raise CallbackError("callback_url must use https (this service does not allow http)")
    if parts.username or parts.password:
        raise CallbackError("callback_url must not carry a user name or password")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise CallbackError(f"callback_url host {parts.hostname!r} does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise CallbackError(f"callback_url host {parts.hostname!r} is a private, loopback "
                                "or otherwise internal address; refused")
    return url


def sign(secret: str, body: bytes, ts: int | None = None) -> str:
    """The X-DFD-Signature header value for body."""
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent (no replays)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        ts = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
