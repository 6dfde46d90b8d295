"""node_auth: a node-to-node request is accepted only signed with the key, for its path and body, recently."""

from lambdalet import node_auth

KEY = b"k" * 32


def test_a_signed_request_verifies_and_a_changed_one_does_not():
    value = node_auth.sign(KEY, "/_lambdalet/peer/logs", b"{}", now=1000)
    assert node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b"{}", now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b'{"op": 1}', now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/other", b"{}", now=1010)
    assert not node_auth.verify(b"x" * 32, value, "/_lambdalet/peer/logs", b"{}", now=1010)
    assert not node_auth.verify(KEY, value, "/_lambdalet/peer/logs", b"{}", now=1000 + node_auth.MAX_SKEW_S + 1)
    assert not node_auth.verify(KEY, "", "/_lambdalet/peer/logs", b"{}", now=1000)
