"""Server-side HTTP without request forgery: the host is resolved once, every address checked,
and the connection pinned to the checked address (no second lookup that could answer
differently). Used for links (url=) and for webhook delivery.

https only unless allow_http; private, loopback, link-local, multicast and reserved addresses
refused unless allow_private (tests and closed networks only). Redirects are followed by hand,
at most MAX_REDIRECTS, each checked again; the body is capped while it streams, and the whole
exchange has one deadline (a server that answers a byte a second cannot hold a request open).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from shared.errors import InputError

MAX_REDIRECTS = 3
MAX_URL = 2000
CHUNK = 64 * 1024
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(InputError):
    """A link or callback we refuse or could not fetch; code and status for the API."""


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts and the one address the connection goes to."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def allowed_networks(allow_private: bool | Iterable[str]) -> tuple[IPNetwork, ...]:
    """allow_private as networks: True allows every address, False none, or a list of CIDRs
    (a closed network's own ranges)."""
    if allow_private is True:
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    if not allow_private:
        return ()
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow_private)


def check_target(url: str, *, allow_http: bool,
                 allow_private: bool | Iterable[str] = False) -> Target:
    """Parse, resolve once and check a URL; FetchError naming why it is refused.
    allow_private: see allowed_networks."""
    if len(url) > MAX_URL:
        raise FetchError("bad_url", f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError("bad_url", "not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FetchError("bad_url", "the URL must be https:// with a host")
    if parts.scheme == "http" and not allow_http:
        raise FetchError("bad_url", "the URL must use https (this service does not allow http)")
    if parts.username or parts.password:
        raise FetchError("bad_url", "the URL must not carry a user name or password")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError("bad_url", f"the host {parts.hostname!r} does not resolve") from None
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    allowed = allowed_networks(allow_private)
    for address in addresses:
        if not (is_public(address) or any(ipaddress.ip_address(address) in net
                                           for net in allowed)):
            raise FetchError("forbidden_address", f"the host {parts.hostname!r} is a private, "
                             f"loopback or otherwise internal address ({address}); refused")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, addresses[0], path)


def is_public(address: str) -> bool:
    """A globally routable unicast address (not private, loopback, link-local, reserved...)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def pinned_pool(target: Target, timeout: float, ca_file: str = "") -> urllib3.HTTPConnectionPool:
    """A connection pool to the checked address; TLS still verifies the certificate for the
    host name (SNI and hostname check use the name, the socket uses the address) against
    certifi's CAs, or those of ca_file."""
    limit = urllib3.Timeout(connect=min(timeout, 5.0), read=min(timeout, 10.0))
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=limit, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=ca_file or certifi.where())
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=limit,
                                      retries=False, maxsize=1)


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


def request(method: str, target: Target, *, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 10.0, ca_file: str = ""):
    """One request over a pinned connection, not following redirects; the streaming response.
    urllib3 errors pass through for the caller to word."""
    pool = pinned_pool(target, timeout, ca_file)
    return pool.urlopen(method, target.path, body=body, redirect=False, retries=False,
                        preload_content=False, assert_same_host=False,
                        headers={"Host": _host_header(target), **(headers or {})})


@dataclass(frozen=True)
class Fetched:
    """A fetched body and the URL it finally came from."""

    url: str
    body: bytes
    content_type: str


def fetch(url: str, *, max_bytes: int, timeout: float, allow_http: bool = False,
          allow_private: bool | Iterable[str] = False, ca_file: str = "") -> Fetched:
    """GET a link's body (at most max_bytes, within timeout seconds in all), following at most
    MAX_REDIRECTS redirects, each checked again; FetchError naming what went wrong."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        target = check_target(url, allow_http=allow_http, allow_private=allow_private)
        try:
            resp = request("GET", target, timeout=max(0.5, deadline - time.monotonic()),
                           headers={"User-Agent": "dfd-fetch", "Accept": "image/*, video/*"},
                           ca_file=ca_file)
        except urllib3.exceptions.HTTPError as exc:
            if _tls_failed(exc):
                raise FetchError("fetch_failed", f"the link's TLS certificate is not valid for "
                                 f"{target.host!r} (or not from a trusted CA); not fetched",
                                 502) from None
            raise FetchError("fetch_failed", f"the link could not be fetched "
                             f"({type(exc).__name__})", 502) from None
        try:
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                continue
            if resp.status != 200:
                raise FetchError("fetch_failed", f"the link answered HTTP {resp.status}", 502)
            body = _read_capped(resp, max_bytes, deadline)
            return Fetched(url, body, resp.headers.get("Content-Type", ""))
        finally:
            resp.release_conn()
    raise FetchError("fetch_failed", f"the link redirects more than {MAX_REDIRECTS} times")


def _tls_failed(exc: BaseException) -> bool:
    # urllib3 wraps the SSL error (MaxRetryError(reason=SSLError) with retries off).
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.SSLError):
            return True
        seen = getattr(seen, "reason", None) or seen.__cause__
    return False


def _read_capped(resp, max_bytes: int, deadline: float) -> bytes:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"the link serves {int(declared) / 1e6:.1f} MB; the limit "
                         f"is {max_bytes / 1e6:g} MB", 413)
    chunks, size = [], 0
    try:
        # read1: at most one read from the socket, so the deadline is checked as bytes trickle
        # in (read() would wait for a whole chunk, a byte a second at a time).
        while chunk := resp.read1(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError("too_large", f"the link serves more than "
                                 f"{max_bytes / 1e6:g} MB (the limit)", 413)
            if time.monotonic() > deadline:
                raise FetchError("fetch_timeout", "the link is too slow: not fetched within "
                                 "the time allowed", 504)
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise FetchError("fetch_failed", f"the link broke off ({type(exc).__name__})",
                         502) from None
    return b"".join(chunks)
