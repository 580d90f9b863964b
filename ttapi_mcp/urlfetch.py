"""Fetch an image from an http(s) URL without becoming a tool for reaching the local network.

A model can be prompt-injected into passing any URL, so by default the server refuses
every address that is not public (loopback, private, link-local such as the cloud
metadata service 169.254.169.254, multicast, reserved, unspecified; IPv4 and IPv6,
including IPv4 embedded in IPv6).

How the check holds:

- The host name is resolved once; every address it resolves to must be allowed (a name
  pointing at one public and one private address is refused).
- The connection goes to the *validated address itself*: the URL's host is replaced by
  the IP, the ``Host`` header carries the name, and for https the TLS server name (SNI)
  and certificate check use the name (the ``sni_hostname`` request extension of
  httpcore). So DNS rebinding cannot swap the address between check and connect.
- Redirects are followed by hand, at most ``max_redirects``, each hop checked again
  (scheme, address). Proxies from the environment are ignored: they would connect for us.
- The size is capped by Content-Length first, then by counting the (decoded) bytes as
  they stream; a total time-out bounds the whole fetch; the content must sniff as PNG,
  JPEG or WebP.

Residual risk: a public address that itself forwards to internal services (an open proxy
on the internet) is out of reach of any address check.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from pathlib import Path

import anyio
import httpx2

from .filenames import new_short_id, temp_filename
from .imagefacts import ACCEPTED_FORMATS_TEXT, sniff_file

__all__ = ["URLFetchError", "address_refusal", "fetch_url_to_file"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ALLOW_HINT = "set allow_private_urls to true in the configuration to allow it"
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024
_MAX_ADDRESSES = 4


class URLFetchError(ValueError):
    """Raised when a URL is refused (scheme, address, size, content) or cannot be fetched."""


def _short(url: str) -> str:
    return url if len(url) <= 100 else url[:97] + "..."


def address_refusal(ip: IPAddress | str) -> str | None:
    """Why this address is not public ('loopback', 'private', ...), or None if it is.

    IPv4 addresses embedded in IPv6 (mapped ``::ffff:a.b.c.d``, 6to4, Teredo) are judged
    by the IPv4 address they lead to.
    """
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # the socket really talks to the IPv4 address
            return address_refusal(addr.ipv4_mapped)
        embedded = addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner:
                return inner
    checks = (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("private", addr.is_private),
        ("not globally routable", not addr.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise URLFetchError(f"cannot resolve host {host!r}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise URLFetchError(f"host {host!r} resolved to no address")
    return addresses


async def _checked_targets(url: httpx2.URL, allow_private: bool) -> list[IPAddress]:
    """The addresses to try for ``url`` (at most 4), after every policy check on them."""
    if url.scheme not in ("http", "https"):
        raise URLFetchError(
            f"refused URL {_short(str(url))!r}: only http and https URLs are accepted"
        )
    host = url.raw_host.decode("ascii")
    if not host:
        raise URLFetchError(f"refused URL {_short(str(url))!r}: it has no host")
    if url.userinfo:
        raise URLFetchError("refused URL with a user name or password in it; remove them")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not allow_private:
        for addr in addresses:
            reason = address_refusal(addr)
            if reason:
                raise URLFetchError(
                    f"refused URL {_short(str(url))!r}: host {host!r} resolves to {addr},"
                    f" a {reason} address; only public addresses are fetched ({_ALLOW_HINT})"
                )
    return addresses[:_MAX_ADDRESSES]


def _pinned_request(client: httpx2.AsyncClient, url: httpx2.URL, ip: IPAddress) -> httpx2.Request:
    """A GET to ``ip`` that still names ``url.host`` in Host, SNI and the certificate check."""
    host_header = url.netloc.decode("ascii")
    request = client.build_request(
        "GET",
        url.copy_with(host=str(ip)),
        headers={"Host": host_header, "Accept": "image/png, image/jpeg, image/webp"},
    )
    if url.scheme == "https":
        request.extensions["sni_hostname"] = url.raw_host.decode("ascii")
    return request


async def fetch_url_to_file(
    url: str,
    dest_dir: Path,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool,
    max_redirects: int = 5,
    ssl_context: ssl.SSLContext | None = None,
) -> Path:
    """Download ``url`` into a new temp file (``.*.tmp``) in ``dest_dir`` and return its path.

    The caller owns the file (rename it into place, or delete it). On any refusal or
    failure nothing is left behind. ``timeout`` bounds the whole fetch, redirects included.
    ``ssl_context`` replaces the system trust store (for a private CA).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / temp_filename(f"fetch-{new_short_id()}")
    try:
        with anyio.fail_after(timeout):
            await _download(
                url, dest, max_bytes, timeout, allow_private, max_redirects, ssl_context
            )
        facts = await anyio.to_thread.run_sync(sniff_file, dest)
        if facts.format is None:
            raise URLFetchError(
                f"refused URL {_short(url)!r}: the content is not an accepted image (it looks"
                f" like {facts.detected}); accepted formats: {ACCEPTED_FORMATS_TEXT}"
            )
    except TimeoutError as exc:
        dest.unlink(missing_ok=True)
        raise URLFetchError(
            f"fetching {_short(url)!r} took longer than {timeout:g} s; try a faster host"
        ) from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


async def _download(
    url: str,
    dest: Path,
    max_bytes: int,
    timeout: float,
    allow_private: bool,
    max_redirects: int,
    ssl_context: ssl.SSLContext | None,
) -> None:
    try:
        current = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError) as exc:
        raise URLFetchError(f"refused URL {_short(url)!r}: it is not a valid URL") from exc
    for _hop in range(max_redirects + 1):
        addresses = await _checked_targets(current, allow_private)
        # A fresh client per hop: a pooled connection must never be reused for another name.
        async with httpx2.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=timeout,
            verify=ssl_context if ssl_context is not None else True,
        ) as client:
            response = await _send_first(client, current, addresses)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    current = current.join(response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise URLFetchError(
                        f"fetching {_short(str(current))!r} failed: HTTP {response.status_code}"
                    )
                await _stream_to(response, dest, max_bytes, str(current))
                return
            finally:
                await response.aclose()
    raise URLFetchError(f"refused URL {_short(url)!r}: more than {max_redirects} redirects")


async def _send_first(
    client: httpx2.AsyncClient, url: httpx2.URL, addresses: list[IPAddress]
) -> httpx2.Response:
    """Send to the first validated address that accepts a connection (e.g. ::1 then 127.0.0.1)."""
    for index, ip in enumerate(addresses):
        try:
            return await client.send(_pinned_request(client, url, ip), stream=True)
        except httpx2.ConnectError as exc:
            if index + 1 < len(addresses):
                continue
            error: httpx2.HTTPError = exc
        except httpx2.HTTPError as exc:
            error = exc
        detail = f"{type(error).__name__}: {error}"[:200]
        raise URLFetchError(f"could not fetch {_short(str(url))!r}: {detail}") from error
    raise URLFetchError(f"could not fetch {_short(str(url))!r}: no address to connect to")


async def _stream_to(response: httpx2.Response, dest: Path, max_bytes: int, url: str) -> None:
    too_big = (
        f"refused URL {_short(url)!r}: the image is larger than the limit of {max_bytes} bytes"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise URLFetchError(too_big)
    received = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        async for chunk in response.aiter_bytes(_CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise URLFetchError(too_big)
            await anyio.to_thread.run_sync(f.write, chunk)
        await anyio.to_thread.run_sync(f.flush)
        await anyio.to_thread.run_sync(os.fsync, f.fileno())
