"""Which ``Host`` headers the server answers: the guard against DNS rebinding.

A web page can point a name it controls at 127.0.0.1 and then talk to a local server as if it were its own
origin; the browser still sends that name as ``Host``. A server without an API key therefore answers only
loopback names (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``) and the address it was bound to, plus
whatever ``--allowed-hosts`` adds; with a key, any Host is answered unless ``--allowed-hosts`` is given.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ANY = "*"


def host_name(header: str) -> str:
    """The name in a ``Host`` header: lower-case, without the port, brackets or a trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8000
        return header[1 : header.find("]")] if "]" in header else header[1:]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """``names``: exact host names, ``.suffix`` for a domain and its subdomains, or ``*`` for any."""

    names: frozenset[str] = frozenset()
    loopback: bool = True

    def allows(self, header: str | None) -> bool:
        if header is None:  # HTTP/1.0 without Host: not a browser, so not a rebinding page
            return True
        name = host_name(header)
        if ANY in self.names or name in self.names or (self.loopback and is_loopback(name)):
            return True
        return any(n.startswith(".") and (name.endswith(n) or name == n[1:]) for n in self.names)


def host_policy(api_key: str | None, allowed_hosts: list[str] | None, bind_host: str = "127.0.0.1") -> HostPolicy:
    """The default above: loopback (and ``bind_host``) without a key, anything with one; ``allowed_hosts`` adds."""
    names = {host_name(h) if h.strip() != ANY else ANY for h in allowed_hosts or [] if h.strip()}
    if not allowed_hosts and api_key:
        names.add(ANY)
    bound = host_name(bind_host)
    if bound and bound not in ("0.0.0.0", "::"):  # the operator named this interface
        names.add(bound)
    return HostPolicy(frozenset(names))
