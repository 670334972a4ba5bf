"""Which URLs a webhook may be sent to. A service that POSTs to URLs its users give must not be
usable to reach its own network (SSRF): the host's addresses must all be public unless the
deployment allows private targets (``GREENTRAINER_WEBHOOKS__ALLOW_PRIVATE_TARGETS``). The check
runs at registration and again before every try, since a name may resolve elsewhere later."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from service.errors import InvalidInput

SCHEMES = ("http", "https")


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput(f"url: cannot resolve the host {host!r}", field="url") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise `InvalidInput` (field ``url``) for a URL that is not http(s) with a host, or whose
    host resolves to a non-public address while those are not allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidInput(f"url: not a valid URL ({exc})", field="url") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InvalidInput("url: must be an http:// or https:// URL with a host", field="url")
    if parts.username or parts.password:
        raise InvalidInput("url: must not carry a user name or password", field="url")
    if allow_private:
        return
    for address in _addresses(parts.hostname, port):
        if not address.is_global:
            raise InvalidInput(
                f"url: {parts.hostname} is a private, loopback or otherwise non-public address "
                f"({address}); this deployment sends webhooks to public addresses only "
                "(GREENTRAINER_WEBHOOKS__ALLOW_PRIVATE_TARGETS)", field="url")
