"""The SSRF guard: which addresses count as internal, how names are resolved (once), and
that the request goes to exactly the checked address without following redirects."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from frontdesk.core import netguard
from frontdesk.core.netguard import UnsafeURL, check_url, guarded_request, internal_reason
from tests.webhooks.receiver import Receiver, Reply

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("0.0.0.0", "'this network'"),
    ("0.1.2.3", "'this network'"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    # IPv4 inside IPv6: the wrapped address decides.
    ("::ffff:127.0.0.1", "loopback address (127.0.0.1) in IPv4-mapped form"),
    ("::ffff:169.254.169.254", "link-local address (cloud metadata lives here) "
                               "(169.254.169.254) in IPv4-mapped form"),
    ("::ffff:0:10.0.0.1", "private address (10.0.0.1) in IPv4-translated form"),
    ("::127.0.0.1", "loopback address (127.0.0.1) in IPv4-compatible form"),
    ("64:ff9b::7f00:1", "loopback address (127.0.0.1) in NAT64 form"),
    ("64:ff9b::a9fe:a9fe", "in NAT64 form"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("2002:7f00:1::", "loopback address (127.0.0.1) in 6to4 form"),
    ("2002:a00:1::1", "private address (10.0.0.1) in 6to4 form"),
    # Teredo: client 127.0.0.1 is stored bit-inverted in the last 32 bits.
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address (127.0.0.1) in Teredo form"),
])
def test_internal_addresses_are_recognised_with_a_reason(address: str, why: str) -> None:
    reason = internal_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "2606:4700:4700::1111",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses_pass(address: str) -> None:
    assert internal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("spelling", ["0177.0.0.1", "2130706433", "127.1", "0x7f.1",
                                      "0x7f000001", "017700000001", "127.0.1"])
async def test_odd_ipv4_spellings_resolve_to_loopback_and_are_refused(spelling: str) -> None:
    assert await netguard.resolve(spelling, 80) == (LOOPBACK,)
    with pytest.raises(UnsafeURL) as refused:
        await check_url(f"http://{spelling}/hook", allow_private=False)
    assert "127.0.0.1" in refused.value.reason
    assert "loopback" in refused.value.reason


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/x", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://example.com/", "only http and https"),
    ("//example.com/x", "only http and https"),
    ("http://user:pass@example.com/", "credentials"),
    ("http://user@example.com/", "credentials"),
    ("http:///path-only", "no host"),
    ("http://exa mple.com/", "not valid"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://example.com:0/", "port 0"),
    ("http://example.com:99999/", "malformed"),
])
async def test_malformed_or_forbidden_urls_are_refused_even_when_private_is_allowed(
    url: str, why: str
) -> None:
    with pytest.raises(UnsafeURL) as refused:
        await check_url(url, allow_private=True)
    assert why in refused.value.reason
    assert refused.value.status_code == 422


async def test_allow_private_lifts_only_the_internal_address_rule() -> None:
    target = await check_url("http://127.1:8080/a?b=1", allow_private=True)
    assert target.addresses == (LOOPBACK,)
    assert (target.host, target.port, target.target) == ("127.1", 8080, "/a?b=1")
    with pytest.raises(UnsafeURL):
        await check_url("ftp://127.0.0.1/", allow_private=True)


async def test_a_name_that_does_not_resolve_is_refused_with_its_own_code() -> None:
    with pytest.raises(UnsafeURL) as refused:
        await check_url("http://no-such-host.invalid/", allow_private=False)
    assert refused.value.code == "unresolvable_url"


class FakeDNS:
    """Answers for made-up names and counts the lookups; real names go to the real resolver
    (so a second lookup of a made-up name, by anyone, would show up here)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.lookups: dict[str, int] = {}
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._real(host, port, *args, **kwargs)
        n = self.lookups.get(name, 0)
        self.lookups[name] = n + 1
        addresses = self.answers[name][min(n, len(self.answers[name]) - 1)]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, int(port or 0))) for a in addresses]


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDNS(monkeypatch, {"mixed.test": [["93.184.216.34", "10.1.2.3"]]})
    with pytest.raises(UnsafeURL) as refused:
        await check_url("https://mixed.test/hook", allow_private=False)
    assert "'mixed.test' resolves to 10.1.2.3, a private address" in refused.value.reason


async def test_the_name_is_resolved_once_and_the_request_goes_to_that_address(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # A rebinding name: 127.0.0.1 (our receiver) first, then an address nothing listens on.
    dns = FakeDNS(monkeypatch, {"rebind.test": [["127.0.0.1"], ["192.0.2.1"]]})
    port = receiver.url.split(":")[2].split("/")[0]
    response = await guarded_request(f"http://rebind.test:{port}/in?x=1", allow_private=True,
                                     content=b"{}", limit_seconds=5)
    assert response.status_code == 200
    assert response.address == LOOPBACK
    assert dns.lookups == {"rebind.test": 1}
    (request,) = receiver.requests
    assert request.path == "/in?x=1"
    assert request.headers["host"] == f"rebind.test:{port}"


async def test_a_redirect_is_returned_not_followed(
    receiver: Receiver, second_receiver: Receiver
) -> None:
    receiver.answer(Reply(302, {"Location": second_receiver.url}))
    response = await guarded_request(receiver.url, allow_private=True, content=b"{}")
    assert response.status_code == 302
    assert response.headers["location"] == second_receiver.url
    assert second_receiver.requests == []


def test_https_requests_dial_the_ip_but_verify_the_certificate_for_the_name() -> None:
    target = netguard.ResolvedTarget(
        url="https://hooks.example.com/in", scheme="https", host="hooks.example.com", port=443,
        target="/in", addresses=(ipaddress.IPv4Address("93.184.216.34"),),
    )
    request = target.request_for(target.addresses[0], content=b"{}")
    assert str(request.url) == "https://93.184.216.34/in"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"

    v6 = ipaddress.IPv6Address("2606:4700:4700::1111")
    request6 = target.request_for(v6)
    assert request6.url.host == "2606:4700:4700::1111"
    assert request6.headers["host"] == "hooks.example.com"
