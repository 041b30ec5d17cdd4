"""ACLs: world, digest, auth, ip schemes; add_auth; getACL/setACL with
aversion; NoAuth and InvalidACL; the super digest user."""

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.security import (
    ACL,
    Id,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

import zkharness as h


def test_default_acl_is_world_anyone(zk, base):
    zk.create(f"{base}/a")
    acls, stat = zk.get_acls(f"{base}/a")
    assert acls == [ACL(Permissions.ALL, Id("world", "anyone"))]
    assert stat.aversion == 0


def test_read_only_world(zk, base):
    zk.create(f"{base}/ro", b"x", acl=READ_ACL_UNSAFE)
    assert zk.get(f"{base}/ro")[0] == b"x"
    with pytest.raises(NoAuthError):
        zk.set(f"{base}/ro", b"y")
    with pytest.raises(NoAuthError):
        zk.create(f"{base}/ro/child")
    # Delete is checked against the parent's ACL, which is open.
    zk.delete(f"{base}/ro")


def test_digest_acl(clients, zk, base):
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create(f"{base}/d", b"data", acl=[acl])
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/d")
    # exists needs no permission; getACL needs READ or ADMIN.
    assert zk.exists(f"{base}/d") is not None
    with pytest.raises(NoAuthError):
        zk.get_acls(f"{base}/d")
    alice = clients(auth_data=[("digest", "alice:secret")])
    assert alice.get_acls(f"{base}/d")[0] == [acl]
    assert alice.get(f"{base}/d")[0] == b"data"
    zk.add_auth("digest", "bob:pw")
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/d")
    zk.add_auth("digest", "alice:secret")
    assert zk.get(f"{base}/d")[0] == b"data"


def test_auth_scheme_uses_session_identities(clients, base):
    owner = clients(auth_data=[("digest", "carol:pw")])
    owner.create(f"{base}/auth", b"c", acl=[make_acl("auth", "", all=True)])
    acls, _ = owner.get_acls(f"{base}/auth")
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("carol", "pw")))]
    stranger = clients()
    with pytest.raises(NoAuthError):
        stranger.get(f"{base}/auth")


def test_auth_scheme_without_identity_is_invalid(zk, base):
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/auth", acl=[make_acl("auth", "", all=True)])


def test_invalid_acls(zk, base):
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/x", acl=[make_acl("digest", "no-colon", all=True)])
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/x", acl=[make_acl("nosuchscheme", "id", all=True)])
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/x", acl=[make_acl("ip", "not-an-ip", all=True)])


def test_ip_acl(zk, base):
    zk.create(f"{base}/lo", b"1", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert zk.get(f"{base}/lo")[0] == b"1"
    zk.create(f"{base}/net", b"2", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert zk.get(f"{base}/net")[0] == b"2"
    zk.create(f"{base}/other", b"3", acl=[make_acl("ip", "10.1.2.3", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/other")


def test_set_acls_and_aversion(zk, base):
    zk.create(f"{base}/a")
    stat = zk.set_acls(f"{base}/a", OPEN_ACL_UNSAFE, version=0)
    assert stat.aversion == 1 and stat.version == 0
    with pytest.raises(BadVersionError):
        zk.set_acls(f"{base}/a", READ_ACL_UNSAFE, version=0)
    stat = zk.set_acls(f"{base}/a", READ_ACL_UNSAFE, version=1)
    assert stat.aversion == 2
    # setACL needs ADMIN, which READ_ACL_UNSAFE lacks.
    with pytest.raises(NoAuthError):
        zk.set_acls(f"{base}/a", OPEN_ACL_UNSAFE)
    assert zk.get_acls(f"{base}/a")[0] == READ_ACL_UNSAFE


def test_super_user_bypasses_acls(clients, zk, base):
    zk.create(f"{base}/locked", b"s", acl=[make_digest_acl("alice", "secret", read=True)])
    root = clients(auth_data=[("digest", f"{h.SUPER_USER}:{h.SUPER_PASSWORD}")])
    assert root.get(f"{base}/locked")[0] == b"s"
    root.set(f"{base}/locked", b"t")
    root.set_acls(f"{base}/locked", OPEN_ACL_UNSAFE)
    assert zk.get(f"{base}/locked")[0] == b"t"


def test_unknown_auth_scheme_fails_session(server):
    client = h.KazooClient(hosts=server.hosts, timeout=10.0, connection_retry=None)
    client.start(timeout=10.0)
    try:
        with pytest.raises(AuthFailedError):
            client.add_auth("nosuchscheme", "x")
    finally:
        client.stop()
        client.close()
