"""The SSRF guard: outbound requests to URLs that users typed in (webhooks, later more).

A URL an admin gives us must not become a way to reach what only the server can reach:
the loopback interface, the private network, the cloud metadata service. Checking the
host *name* is useless (`0177.0.0.1`, `2130706433`, `127.1`, `[::ffff:127.0.0.1]`, a
DNS name that points inside, a name that answers differently the second time), so:

1. the name is resolved once, with the system resolver (which also decodes the odd
   IPv4 spellings exactly as the socket layer would);
2. every resolved address is checked, after unwrapping IPv4 carried inside IPv6
   (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo);
3. the request goes to exactly that checked address: the URL handed to httpx names the
   IP, the Host header and the TLS SNI/certificate check name the original host. Nothing
   re-resolves between the check and the connection, so DNS rebinding has no window;
4. redirects are never followed (a 3xx is returned to the caller as it is).

`allow_private` (FRONTDESK_WEBHOOKS_ALLOW_PRIVATE) lifts only the internal-address rule,
for tests and LAN installs; the scheme and userinfo rules always hold.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httpx

from frontdesk.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = {"http": 80, "https": 443}
RESOLVE_TIMEOUT_SECONDS = 5.0

# Named so that a refusal says *why*, not just "not global". Order matters: the first
# match is the reason given.
_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001:db8::/32", "a documentation address"),
        ("100::/64", "a discard-only address"),
    )
)
# Prefixes whose last 32 bits are an IPv4 address the packet really goes to.
_V4_IN_LAST_32: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("64:ff9b::/96", "NAT64"),
        ("::/96", "IPv4-compatible"),
    )
)
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class UnsafeURL(InvalidInput):
    """The URL may not be requested; `reason` says why in words a person can act on.
    Rendered like any 422: details name the field (`body.url` for the API) and why."""

    code = "unsafe_url"

    def __init__(self, url: str, reason: str, *, code: str | None = None,
                 field: str = "body.url") -> None:
        super().__init__(f"This URL can't be used: {reason}", code=code, details=[
            {"field": field, "message": reason, "type": code or self.code}])
        self.url = url
        self.reason = reason


def internal_reason(address: IPAddress) -> str | None:
    """Why this address counts as internal, or None when it is a public unicast address."""
    why = _why_internal(address)
    return None if why is None else f"{address} is {why}"


def _why_internal(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped to a local interface"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            kind, inner, carried = embedded
            inner_why = _why_internal(inner)
            if inner_why is not None:
                return f"{inner_why} ({inner}) in {kind} form"
            if carried:
                return None  # the packet really goes to that public IPv4 address
        for network6, why in _V6_RULES:
            if address in network6:
                return why
    else:
        for network4, why in _V4_RULES:
            if address in network4:
                return why
    if address.is_multicast or address.is_reserved or address.is_loopback:
        return "a reserved or special-purpose address"
    if not address.is_global:
        return "not a public internet address"
    return None


def _embedded_ipv4(
    address: ipaddress.IPv6Address,
) -> tuple[str, ipaddress.IPv4Address, bool] | None:
    """The IPv4 address inside an IPv6 one: (kind, address, whether packets are simply
    carried to it, so that it alone decides)."""
    if address in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
        return None
    for network, kind in _V4_IN_LAST_32:
        if address in network:
            return kind, ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), True
    if address.sixtofour is not None:
        return "6to4", address.sixtofour, False
    if address.teredo is not None:
        # Teredo hides the client's address (bit-inverted) next to the relay server's.
        server, client = address.teredo
        return "Teredo", client if _why_internal(client) else server, False
    return None


def is_internal(address: str | IPAddress) -> bool:
    return internal_reason(ipaddress.ip_address(address)) is not None


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked URL and the addresses it resolved to; connect only to these."""

    url: str
    scheme: str
    host: str  # as the URL names it (IDNA-encoded, lower case): Host header and TLS name
    port: int
    target: str  # path and query, sent as they were written
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = ALLOWED_SCHEMES[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def host_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def request_for(
        self, address: IPAddress, *, method: str = "POST", headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Request:
        """A request that connects to `address` and nowhere else, while speaking to (and for
        https verifying the certificate of) the host the URL names."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        request = httpx.Request(
            method, f"{self.scheme}://{literal}:{self.port}{self.target}",
            headers={**(headers or {}), "Host": self.host_header}, content=content,
        )
        if self.scheme == "https" and not self.host_is_ip:
            # httpcore uses this for SNI *and* as the name the certificate must match.
            request.extensions["sni_hostname"] = self.host.rstrip(".")
        return request


def parse_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path+query of an acceptable URL; UnsafeURL otherwise.
    Needs no network, so it also serves input validation."""
    if len(url) > 2048:
        raise UnsafeURL(url[:100], "the URL is longer than 2048 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(url, f"the URL is malformed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(url, f"only http and https URLs are allowed, not '{scheme or 'none'}'")
    if "@" in parts.netloc:
        raise UnsafeURL(url, "credentials in the URL (user@host) are not allowed")
    host = parts.hostname or ""
    if not host:
        raise UnsafeURL(url, "the URL has no host")
    if "%" in host:
        raise UnsafeURL(url, "IPv6 zone identifiers (%) are not allowed")
    if ":" in host:  # urlsplit only yields a colon in the host for a bracketed IPv6 literal
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise UnsafeURL(url, f"'{host}' is not a valid IPv6 address") from exc
    else:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise UnsafeURL(url, f"the host name '{host}' is not valid") from exc
        if not _HOSTNAME.match(host):
            raise UnsafeURL(url, f"the host name '{host}' is not valid")
    if port == 0:
        raise UnsafeURL(url, "port 0 is not a real port")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return scheme, host, port or ALLOWED_SCHEMES[scheme], target


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address the system resolver gives for host (once; in a thread)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT_SECONDS
    )
    seen: dict[IPAddress, None] = {}
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        seen[ipaddress.ip_address(sockaddr[0])] = None
    return tuple(seen)


async def check_url(url: str, allow_private: bool) -> ResolvedTarget:
    """Resolve the URL's host once and check every address. Raises UnsafeURL with a reason."""
    scheme, host, port, target = parse_url(url)
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UnsafeURL(url, f"the host name '{host}' does not resolve ({exc})",
                        code="unresolvable_url") from exc
    if not addresses:
        raise UnsafeURL(url, f"the host name '{host}' has no IP address",
                        code="unresolvable_url")
    if not allow_private:
        for address in addresses:  # every one: a client may connect to any of them
            why = _why_internal(address)
            if why is not None:
                named = _same_address(host, address)
                where = f"{address} is" if named else f"'{host}' resolves to {address},"
                raise UnsafeURL(url, f"{where} {why}; requests to internal networks are "
                                     "refused (FRONTDESK_WEBHOOKS_ALLOW_PRIVATE=1 allows them)")
    return ResolvedTarget(url=url, scheme=scheme, host=host, port=port, target=target,
                          addresses=addresses)


def _same_address(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle costs milliseconds, and every request needs it.
    return ssl.create_default_context()


@dataclass(frozen=True)
class GuardedResponse:
    status_code: int
    headers: httpx.Headers
    body_excerpt: str  # the first bytes, decoded leniently: for the delivery log
    address: IPAddress  # the address the request actually went to


MAX_BODY_KEPT = 1024


async def guarded_request(
    url: str, *, allow_private: bool, method: str = "POST", headers: dict[str, str] | None = None,
    content: bytes | None = None, limit_seconds: float = 10.0,
) -> GuardedResponse:
    """Check the URL, then send one request to exactly the checked address. The response
    comes back as it is: a redirect is *not* followed. `limit_seconds` bounds everything, the
    name lookup included. Raises UnsafeURL, httpx.TransportError or TimeoutError.

    A fresh client per request: httpx pools connections by the IP we dial, and a pooled TLS
    connection made for one host name must never carry a request for another."""
    async with asyncio.timeout(limit_seconds):
        resolved = await check_url(url, allow_private)
        last_error: httpx.TransportError | None = None
        async with httpx.AsyncClient(
            verify=_tls_context(), trust_env=False, follow_redirects=False,
            timeout=httpx.Timeout(limit_seconds),
        ) as client:
            for address in resolved.addresses:
                request = resolved.request_for(address, method=method, headers=headers,
                                               content=content)
                try:
                    response = await client.send(request, stream=True)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    last_error = exc  # that address is down; the next one was checked too
                    continue
                try:
                    excerpt = await _read_some(response)
                finally:
                    await response.aclose()
                return GuardedResponse(response.status_code, response.headers, excerpt, address)
        assert last_error is not None
        raise last_error


async def _read_some(response: httpx.Response) -> str:
    """The first bytes of the body; a receiver that streams forever must not hold us."""
    kept = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            kept += chunk
            if len(kept) >= MAX_BODY_KEPT:
                break
    except httpx.HTTPError:
        pass  # the status is what counts; a broken body doesn't change it
    return bytes(kept[:MAX_BODY_KEPT]).decode("utf-8", "replace")
