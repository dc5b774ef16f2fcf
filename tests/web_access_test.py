"""Who may use the pages (`dped_tf.web.access`): which addresses need a token."""

from dped_tf.web import access


def test_binding_beyond_loopback_needs_a_token():
  for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
    assert access.token_for(host, None) == (None, False), host
    assert access.token_for(host, "mine") == ("mine", False), host
  for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
    token, generated = access.token_for(host, None)
    assert generated and len(token) >= 32, host  # 192 random bits, URL-safe
    assert access.token_for(host, "mine") == ("mine", False), host
  assert access.token_for("0.0.0.0", None)[0] != access.token_for("0.0.0.0", None)[0]
