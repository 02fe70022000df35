"""Links (url=): fetched by the server from a real local HTTP server on 127.0.0.2 (the only
private address the test settings allow), pinned, capped, timed out, validated as uploads."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from harness import videos
from shared.fetch import FetchError, check_target, fetch, is_public
from tests.conftest import DATA

HOST = "127.0.0.2"


class Handler(BaseHTTPRequestHandler):
    """The paths the tests link to."""

    photo = b""
    clip = b""
    local_port = 0

    def log_message(self, *args):  # quiet
        pass

    def _send(self, body: bytes, ctype: str, length: int | None = None):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - the http.server name
        path = self.path
        if path == "/face.jpg":
            self._send(self.photo, "image/jpeg")
        elif path == "/clip":
            self._send(self.clip, "video/mp4")
        elif path == "/page.html":
            self._send(b"<!doctype html><html><body><img src=face.jpg></body></html>",
                       "text/html")
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{n - 1}" if n > 0 else "/face.jpg")
            self.end_headers()
        elif path == "/to-loopback":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.local_port}/face.jpg")
            self.end_headers()
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):  # one byte a second
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(1)
        elif path == "/gigabyte-declared":
            self._send(b"\xff\xd8\xff", "image/jpeg", length=1 << 30)
        elif path == "/gigabyte":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()  # no Content-Length: the cap must hold while streaming
            chunk = b"\xff\xd8\xff" + bytes(1 << 20)
            for _ in range(1024):
                self.wfile.write(chunk)
        else:
            self.send_error(404)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hangs up is expected here
        pass


@pytest.fixture(scope="module")
def site():
    """http://127.0.0.2:<port>, serving a face photo, a face video and the hostile paths."""
    photo = sorted((DATA / "stylegan-faces" / "real").glob("*.jpg"))[0].read_bytes() \
        if DATA.is_dir() else b""
    Handler.photo = photo
    Handler.clip = videos.video([[sorted((DATA / "stylegan-faces" / "fake").glob("*.jpg"))[0]]],
                                seconds=3) if DATA.is_dir() else b""
    server = Server((HOST, 0), Handler)
    Handler.local_port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("224.0.0.1", False), ("240.0.0.1", False), ("::1", False),
    ("fe80::1", False), ("::ffff:127.0.0.1", False), ("2001:4860:4860::8888", True)])
def test_public_addresses(address, public):
    assert is_public(address) is public


def test_default_settings_refuse_http_and_loopback():
    with pytest.raises(FetchError, match="https"):
        check_target("http://example.org/a.jpg", allow_http=False)
    with pytest.raises(FetchError, match="internal address"):
        check_target("https://localhost/a.jpg", allow_http=False)
    with pytest.raises(FetchError, match="user name"):
        check_target("https://u:p@example.org/", allow_http=False)


def test_the_connection_goes_to_the_address_checked(site):
    target = check_target(site + "/face.jpg", allow_http=True, allow_private=["127.0.0.2/32"])
    assert target.address == HOST and target.host == HOST


def test_redirect_to_loopback_is_checked_again_and_refused(site):
    with pytest.raises(FetchError) as info:
        fetch(site + "/to-loopback", max_bytes=10**7, timeout=5, allow_http=True,
              allow_private=["127.0.0.2/32"])
    assert info.value.code == "forbidden_address" and "127.0.0.1" in str(info.value)


def test_at_most_three_redirects(site):
    ok = fetch(site + "/hop/2", max_bytes=10**7, timeout=5, allow_http=True, allow_private=True)
    assert ok.body == Handler.photo and ok.url.endswith("/face.jpg")
    with pytest.raises(FetchError, match="more than 3"):
        fetch(site + "/hop/3", max_bytes=10**7, timeout=5, allow_http=True, allow_private=True)


def test_a_byte_a_second_hits_the_deadline(site):
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(site + "/slow", max_bytes=10**7, timeout=2, allow_http=True, allow_private=True)
    assert info.value.code == "fetch_timeout" and time.monotonic() - started < 5


def test_a_gigabyte_is_cut_off_at_the_cap(site):
    with pytest.raises(FetchError) as info:
        fetch(site + "/gigabyte", max_bytes=5 * 10**6, timeout=10, allow_http=True,
              allow_private=True)
    assert info.value.code == "too_large" and info.value.status == 413


def submit_link(live_server, url: str) -> requests.Response:
    return requests.post(f"{live_server.url}/api/v1/jobs", params={"wait": 10}, timeout=90,
                         headers={"Authorization": f"Bearer {live_server.api_key}"},
                         data={"url": url})


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_links_through_the_service(live_server, site):
    r = submit_link(live_server, site + "/face.jpg")
    assert r.status_code == 200, r.text
    job = r.json()["jobs"][0]
    assert job["filename"] == "face.jpg" and job["result"]["media"] == "image"
    r = submit_link(live_server, site + "/clip")
    job = live_server.wait_final(r.json()["jobs"][0]["id"], timeout=120)
    assert job["result"]["media"] == "video", job
    for path, status, code in [("/page.html", 415, "unsupported_type"),
                               ("/to-loopback", 400, "forbidden_address"),
                               ("/slow", 504, "fetch_timeout"),
                               ("/gigabyte-declared", 413, "too_large")]:
        r = submit_link(live_server, site + path)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)
    r = submit_link(live_server, "http://127.0.0.1:1/face.jpg")
    assert r.status_code == 400 and "internal address" in r.json()["error"]["message"]


def test_a_name_that_rebinds_after_the_check_is_not_looked_up_again(site, monkeypatch):
    """DNS rebinding: the name answers a permitted address, then loopback. The connection goes
    to the address checked; the name is looked up once per hop."""
    import socket

    real = socket.getaddrinfo
    asked = []
    port = int(site.rsplit(":", 1)[1])

    def resolver(host, *args, **kw):
        if host == "rebind.test":
            asked.append(host)
            address = HOST if len(asked) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    got = fetch(f"http://rebind.test:{port}/face.jpg", max_bytes=10**7, timeout=5,
                allow_http=True, allow_private=["127.0.0.2/32"])
    assert got.body == Handler.photo and asked == ["rebind.test"]


# --- https: a real TLS server with a throwaway CA; the name is resolved once, the socket pinned
# to that address, and the certificate still checked for the name (SNI and hostname).
TLS_NAME = "photos.dfd-test.invalid"


def _tls_files(tmp, names: list[str]) -> tuple[str, str, str]:
    """(ca.pem, server cert.pem, key.pem): a CA and a server certificate for `names`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject, issuer, key, sign_key, ca: bool, sans=()):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
                                critical=False)
        return b.sign(sign_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dfd test CA")])
    ca = cert(ca_name, ca_name, ca_key, ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), ca_name, key,
                ca_key, False, names)
    pem = serialization.Encoding.PEM
    paths = [tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"]
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


@pytest.fixture
def tls_site(tmp_path, monkeypatch):
    """start(names) -> (https URL base for TLS_NAME, ca.pem, SNI names the server saw); the
    name resolves to 127.0.0.2, and a second lookup of it fails the test."""
    import socket
    import ssl

    from shared import fetch as fetch_mod

    servers, lookups = [], []
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kw):
        if host == TLS_NAME:
            lookups.append(host)
            assert len(lookups) == 1, "the name was resolved a second time"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (HOST, port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(fetch_mod.socket, "getaddrinfo", resolve)

    def start(names: list[str]):
        ca, cert, key = _tls_files(tmp_path, names)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        seen = []
        ctx.sni_callback = lambda sock, name, _ctx: seen.append(name)
        server = Server((HOST, 0), Handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://{TLS_NAME}:{server.server_address[1]}", ca, seen

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_https_link_is_pinned_and_its_certificate_checked_for_the_name(site, tls_site):
    base, ca, seen = tls_site([TLS_NAME])
    got = fetch(base + "/face.jpg", max_bytes=10**7, timeout=5, allow_private=["127.0.0.2/32"],
                ca_file=ca)
    assert got.body == Handler.photo and got.url == base + "/face.jpg"
    assert seen == [TLS_NAME]  # SNI carried the name although the socket went to the address


def test_https_link_with_a_certificate_for_another_name_is_refused(site, tls_site):
    base, ca, _ = tls_site(["someone-else.dfd-test.invalid"])
    with pytest.raises(FetchError) as info:
        fetch(base + "/face.jpg", max_bytes=10**7, timeout=5, allow_private=["127.0.0.2/32"],
              ca_file=ca)
    assert info.value.code == "fetch_failed" and "certificate" in str(info.value)
    assert TLS_NAME in str(info.value)


def test_https_link_from_an_untrusted_ca_is_refused(site, tls_site):
    base, _, _ = tls_site([TLS_NAME])  # the public CAs (certifi) do not know the test CA
    with pytest.raises(FetchError, match="TLS certificate"):
        fetch(base + "/face.jpg", max_bytes=10**7, timeout=5, allow_private=["127.0.0.2/32"])


def test_fetch_ca_file_must_be_a_pem_file(tmp_path):
    from shared.settings import SettingsError, load

    (tmp_path / "junk.pem").write_text("not a certificate")
    for raw in (str(tmp_path / "missing.pem"), str(tmp_path / "junk.pem")):
        with pytest.raises(SettingsError, match="DFD_FETCH_CA_FILE"):
            load({"DFD_FETCH_CA_FILE": raw})
    assert load({}).FETCH_CA_FILE == ""
