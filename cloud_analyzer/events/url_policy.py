"""Which webhook URLs the analyzer will call: http(s) only, and (unless allowed) no address inside the
deployment. A webhook URL is chosen by whoever holds `webhooks:admin`; without this guard it could
point the analyzer at its own Redis, a cloud metadata service or any internal host (SSRF).

The check resolves the host name and refuses loopback, private, link-local, multicast, reserved and
unspecified addresses, at registration and again before every delivery (a name that resolves
elsewhere later is caught then). A name re-bound between that check and the connection is not: where
that matters, send webhooks through an egress proxy or from an isolated network (docs/events.md)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedUrl(ValueError):
    """Not a URL webhooks may target; the message says why."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> None:
    """RefusedUrl unless `url` is an http(s) URL whose host resolves only to addresses webhooks may reach."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("only http:// and https:// URLs")
    if not parts.hostname:
        raise RefusedUrl("the URL has no host")
    if parts.username or parts.password:
        raise RefusedUrl("credentials in the URL are refused (they would be logged); sign with the secret")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedUrl(f"host {parts.hostname!r} does not resolve") from exc
    inside = sorted({str(info[4][0]) for info in infos if not _public(str(info[4][0]))})
    if inside:
        raise RefusedUrl(f"host {parts.hostname!r} resolves to a loopback, private or reserved address "
                         f"({', '.join(inside)}); ANALYZER_WEBHOOK_ALLOW_PRIVATE allows it")
