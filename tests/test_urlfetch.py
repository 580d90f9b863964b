"""Safe URL fetching against a real loopback HTTP server."""

from __future__ import annotations

import io
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from ttapi_mcp.urlfetch import URLFetchError, address_refusal, fetch_url_to_file


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def png_bytes(size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


PNG = png_bytes()


class Handler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "image/png", length: bool = True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.requests.append(f"{self.headers.get('Host')} {self.path}")
        path = self.path
        if path == "/img.png":
            self._send(200, PNG)
        elif path == "/text.png":
            self._send(200, b"this is text, not a picture\n" * 4, "image/png")
        elif path == "/big":
            self._send(200, PNG + b"\0" * 5000)
        elif path == "/big-unannounced":
            self._send(200, PNG + b"\0" * 5000, length=False)
        elif path.startswith("/redirect-to-img"):
            self._redirect("/img.png")
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/slow":
            time.sleep(2)
            self._send(200, PNG)
        else:
            self._send(404, b"not found", "text/plain")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading (size cap, time-out) are expected here


@pytest.fixture
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    Handler.requests = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


async def fetch(url: str, dest: Path, allow_private: bool = True, **kw: object) -> Path:
    options: dict = {"max_bytes": 4096, "timeout": 5.0, "max_redirects": 3} | kw
    return await fetch_url_to_file(url, dest, allow_private=allow_private, **options)


def leftovers(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.exists() else []


@pytest.mark.anyio
async def test_default_policy_refuses_loopback_before_connecting(server: str, tmp_path) -> None:
    port = server.rsplit(":", 1)[1]
    for url in (
        f"{server}/img.png",
        f"http://localhost:{port}/img.png",
        f"http://[::1]:{port}/img.png",
        f"http://[::ffff:127.0.0.1]:{port}/img.png",
    ):
        with pytest.raises(URLFetchError, match="loopback.*allow_private_urls"):
            await fetch(url, tmp_path, allow_private=False)
    assert Handler.requests == []
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_allow_private_fetches_with_host_header(server: str, tmp_path: Path) -> None:
    path = await fetch(f"{server}/img.png", tmp_path)
    assert path.parent == tmp_path and path.name.endswith(".tmp") and path.name.startswith(".")
    assert path.read_bytes() == PNG
    port = server.rsplit(":", 1)[1]
    await fetch(f"http://localhost:{port}/img.png", tmp_path)
    assert Handler.requests[-1] == f"localhost:{port} /img.png"  # name kept, address pinned


@pytest.mark.anyio
async def test_redirect_followed_and_bounded(server: str, tmp_path: Path) -> None:
    path = await fetch(f"{server}/redirect-to-img", tmp_path)
    assert path.read_bytes() == PNG
    path.unlink()
    with pytest.raises(URLFetchError, match="more than 3 redirects"):
        await fetch(f"{server}/loop", tmp_path)
    assert Handler.requests.count(f"127.0.0.1:{server.rsplit(':', 1)[1]} /loop") == 4
    with pytest.raises(URLFetchError, match="only http and https"):
        await fetch(f"{server}/to-file", tmp_path)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_size_cap_declared_and_streamed(server: str, tmp_path: Path) -> None:
    for route in ("/big", "/big-unannounced"):
        with pytest.raises(URLFetchError, match="larger than the limit of 4096 bytes"):
            await fetch(f"{server}{route}", tmp_path)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_non_image_and_http_errors_refused(server: str, tmp_path: Path) -> None:
    with pytest.raises(URLFetchError, match="not an accepted image.*PNG, JPEG or WebP"):
        await fetch(f"{server}/text.png", tmp_path)
    with pytest.raises(URLFetchError, match="HTTP 404"):
        await fetch(f"{server}/missing", tmp_path)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_timeout(server: str, tmp_path: Path) -> None:
    with pytest.raises(URLFetchError, match="took longer than 0.3 s"):
        await fetch(f"{server}/slow", tmp_path, timeout=0.3)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "not a url",
        "http://user:pw@h/x.png",
        "gopher://127.0.0.1/",
    ],
)
async def test_scheme_and_form_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(URLFetchError, match="refused URL"):
        await fetch(url, tmp_path, allow_private=False)


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.5", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("100.64.0.1", "not globally routable"),
        ("2002:7f00:1::", "loopback"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_address_classifier_refuses(ip: str, reason: str) -> None:
    assert address_refusal(ip) == reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_address_classifier_accepts_public(ip: str) -> None:
    assert address_refusal(ip) is None


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for the name 'localhost' only (no IP address in it)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    Handler.requests = []
    try:
        yield httpd.server_address[1], ssl.create_default_context(cafile=str(cert))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.anyio
async def test_https_pinned_address_verifies_the_name(tls_server, tmp_path: Path) -> None:
    port, client_ctx = tls_server
    dest = tmp_path / "dl"
    # connects to the resolved address, yet SNI and the certificate check use 'localhost'
    path = await fetch(f"https://localhost:{port}/img.png", dest, ssl_context=client_ctx)
    assert path.read_bytes() == PNG
    assert Handler.requests == [f"localhost:{port} /img.png"]
    # the certificate does not name 127.0.0.1, so the same server by address is refused
    with pytest.raises(URLFetchError, match="could not fetch.*CERTIFICATE_VERIFY_FAILED"):
        await fetch(f"https://127.0.0.1:{port}/img.png", dest, ssl_context=client_ctx)
    assert [p for p in dest.iterdir()] == [path]
