"""node_auth: a node-to-node request is accepted only signed with the key, for its path and body, recently."""

from aiohttp.test_utils import make_mocked_request

from lambdalet import node_auth
from lambdalet.placement import SOURCE_IP, client_ip

KEY = b"k" * 32


def test_a_signed_request_verifies_and_a_changed_one_does_not():
    value = node_auth.sign(KEY, "/_lambdalet/peer/logs", b"{}", now=1000)
    assert node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b"{}", now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b'{"op": 1}', now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/other", b"{}", now=1010)
    assert not node_auth.verify(b"x" * 32, value, "/_lambdalet/peer/logs", b"{}", now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b"{}", now=1000 + node_auth.MAX_SKEW_S + 1)
    assert not node_auth.verify(KEY, "", "/_lambdalet/peer/logs", b"{}", now=1000)


def test_a_forwarded_requests_client_address_counts_only_when_a_node_signed_it():
    key, path = b"k" * 32, "/2015-03-31/functions/f/invocations"

    def request(ip: str, signed_for: str | None, with_key: bytes = key):
        headers = {SOURCE_IP: ip}
        if signed_for is not None:
            headers[node_auth.HEADER] = node_auth.sign(with_key, f"{path}\n{signed_for}", b"")
        return make_mocked_request("POST", path, headers=headers)

    assert client_ip(request("203.0.113.7", "203.0.113.7"), key) == "203.0.113.7"
    direct = make_mocked_request("POST", path).remote
    assert client_ip(request("203.0.113.7", None), key) == direct  # claimed by the client itself
    assert client_ip(request("203.0.113.7", "198.51.100.1"), key) == direct  # signed for another address
    assert client_ip(request("203.0.113.7", "203.0.113.7", b"x" * 32), key) == direct  # another key
