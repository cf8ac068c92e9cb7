"""HTTP requests to URLs that clients gave us (webhooks), guarded against SSRF.

A client-supplied URL must not become a way into our own network: a host that
resolves to a loopback, private, link-local or otherwise non-public address is
refused, both when the URL is registered and again right before each request
(DNS answers can change after the check: "DNS rebinding"). The request then
connects to the very address that was checked, not to a second lookup of the
name, with the name still used for the Host header, TLS SNI and certificate
checks. Redirects are not followed: a 3xx answer is just an answer.

``allow_private`` turns the address check off for local runs and tests, whose
receivers listen on loopback (settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
# Enough of a response body to say what went wrong; the rest is not read.
RESPONSE_PREVIEW_BYTES = 512


class TargetRefused(Exception):
    """The URL is not one we send requests to; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query, if any


def target_parse(url: str) -> Target:
    """Scheme, host, port and path of an http(s) URL; raises TargetRefused for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in SCHEMES:
        raise TargetRefused("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("Credentials in the URL are not allowed.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or SCHEMES[parts.scheme], path)


def _not_public(address: str) -> str | None:
    """Why ``address`` is not a public internet address, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for reason, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return reason
    return None if ip.is_global else "non-public"


def target_address(target: Target, *, allow_private: bool) -> str:
    """The address to connect to: the first the host resolves to, once every one of them is public.

    All of them are checked because a client library may pick any. Raises TargetRefused.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host {target.host} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            reason = _not_public(address)
            if reason is not None:
                article = "an" if reason[0] in "aeiou" else "a"
                raise TargetRefused(
                    f"The host {target.host} resolves to {address}, {article} {reason} address; only public "
                    "internet addresses are allowed."
                )
    return addresses[0]


def url_check(url: str, *, allow_private: bool) -> None:
    """Raise TargetRefused unless ``url`` is an http(s) URL we may send requests to.

    With ``allow_private`` the host is not even resolved (local runs and tests look nothing up).
    """
    target = target_parse(url)
    if not allow_private:
        target_address(target, allow_private=False)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; the host name is still what the Host header says."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address; SNI and the certificate check use the host name."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        self._ssl_context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._ssl_context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    preview: bytes


def post(*, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, allow_private: bool) -> Answer:
    """POST ``body`` to ``url``, checked and pinned as above. ``timeout_s`` bounds the connection
    and each read. Raises TargetRefused, OSError (connection, timeout, TLS) or http.client.HTTPException."""
    target = target_parse(url)
    address = target_address(target, allow_private=allow_private)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, address, timeout_s)
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return Answer(response.status, response.read(RESPONSE_PREVIEW_BYTES))
    finally:
        connection.close()
