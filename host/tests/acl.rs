//! Black-box tests of ACLs: world, digest, ip and auth schemes, getACL/setACL with aversion,
//! NoAuth, InvalidACL, AuthFailed, and the super user from
//! DigestAuthenticationProvider.superDigest.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use base64::Engine as _;
use common::{bounded, mk, Server};
use sha1::Digest as _;
use zk::Permission as P;
use zookeeper_client as zk;

/// The digest scheme's id for `user:password`: `user:base64(sha1("user:password"))`.
fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap();
    let hash = sha1::Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

#[tokio::test]
async fn world_read_only_node_refuses_writes() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let ro = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
    bounded("create", c.create("/ro", b"v", &ro)).await.unwrap();
    assert_eq!(bounded("get", c.get_data("/ro")).await.unwrap().0, b"v");
    let r = bounded("set", c.set_data("/ro", b"w", None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let r = bounded("create child", c.create("/ro/kid", b"", &opts)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
    let r = bounded("set acl", c.set_acl("/ro", &zk::Acls::anyone_all(), None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
    let (acl, stat) = bounded("get acl", c.get_acl("/ro")).await.unwrap();
    assert_eq!(acl, &*zk::Acls::anyone_read());
    assert_eq!(stat.aversion, 0);
}

#[tokio::test]
async fn digest_acl_needs_matching_auth() {
    let server = Server::start(&[]);
    let owner = server.client().await;
    let stranger = server.client().await;
    let id = digest_id("alice:secret");
    let acl = [zk::Acl::new(P::ALL, zk::AuthId::new("digest", &id))];
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
    bounded("create", owner.create("/secret", b"s", &opts))
        .await
        .unwrap();
    let r = bounded("get", owner.get_data("/secret")).await;
    assert_eq!(
        r.unwrap_err(),
        zk::Error::NoAuth,
        "creating does not grant auth"
    );
    // Exists needs no permission.
    assert!(bounded("exists", stranger.check_stat("/secret"))
        .await
        .unwrap()
        .is_some());

    bounded("auth", owner.auth("digest", b"alice:secret"))
        .await
        .unwrap();
    assert_eq!(
        bounded("get", owner.get_data("/secret")).await.unwrap().0,
        b"s"
    );
    bounded("auth wrong", stranger.auth("digest", b"alice:wrong"))
        .await
        .unwrap();
    for r in [
        bounded("get", stranger.get_data("/secret"))
            .await
            .map(|_| ()),
        bounded("set", stranger.set_data("/secret", b"x", None))
            .await
            .map(|_| ()),
        bounded("ls", stranger.list_children("/secret"))
            .await
            .map(|_| ()),
        bounded("delete kid", stranger.delete("/secret/kid", None)).await,
    ] {
        assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
    }
    let (got, _) = bounded("get acl", owner.get_acl("/secret")).await.unwrap();
    assert_eq!(got, acl);
}

#[tokio::test]
async fn auth_scheme_expands_to_the_session_identities() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let r = bounded(
        "create",
        c.create(
            "/a",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        ),
    )
    .await;
    assert_eq!(
        r.unwrap_err(),
        zk::Error::InvalidAcl,
        "auth scheme without any authenticated id"
    );
    bounded("auth", c.auth("digest", b"bob:pw")).await.unwrap();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    bounded("create", c.create("/a", b"", &opts)).await.unwrap();
    let (acl, _) = bounded("get acl", c.get_acl("/a")).await.unwrap();
    assert_eq!(
        acl,
        [zk::Acl::new(
            P::ALL,
            zk::AuthId::new("digest", &digest_id("bob:pw"))
        )]
    );
    bounded("get", c.get_data("/a")).await.unwrap();
}

#[tokio::test]
async fn ip_acl_matches_the_peer_address() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let mine = [zk::Acl::new(P::ALL, zk::AuthId::new("ip", "127.0.0.1"))];
    let net = [zk::Acl::new(P::READ, zk::AuthId::new("ip", "127.0.0.0/8"))];
    let other = [zk::Acl::new(P::ALL, zk::AuthId::new("ip", "10.1.2.3"))];
    for (path, acl) in [
        ("/mine", &mine[..]),
        ("/net", &net[..]),
        ("/other", &other[..]),
    ] {
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acl));
        bounded("create", c.create(path, b"", &opts)).await.unwrap();
    }
    bounded("get mine", c.get_data("/mine")).await.unwrap();
    bounded("set mine", c.set_data("/mine", b"x", None))
        .await
        .unwrap();
    bounded("get net", c.get_data("/net")).await.unwrap();
    let r = bounded("set net", c.set_data("/net", b"x", None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
    let r = bounded("get other", c.get_data("/other")).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoAuth);
}

#[tokio::test]
async fn invalid_acls_are_refused() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let bad: [&[zk::Acl]; 4] = [
        &[zk::Acl::new(P::ALL, zk::AuthId::new("digest", "no-colon"))],
        &[zk::Acl::new(P::ALL, zk::AuthId::new("nosuchscheme", "x"))],
        &[zk::Acl::new(P::ALL, zk::AuthId::new("ip", "not-an-ip"))],
        &[zk::Acl::new(P::ALL, zk::AuthId::new("world", "someone"))],
    ];
    for acl in bad {
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acl));
        let r = bounded("create", c.create("/bad", b"", &opts)).await;
        assert_eq!(r.unwrap_err(), zk::Error::InvalidAcl, "{acl:?}");
    }
    mk(&c, "/ok", b"").await;
    let acl = [zk::Acl::new(P::ALL, zk::AuthId::new("digest", "no-colon"))];
    let r = bounded("set acl", c.set_acl("/ok", &zk::Acls::new(&acl), None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::InvalidAcl);
}

#[tokio::test]
async fn set_acl_bumps_aversion_and_checks_it() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let s0 = mk(&c, "/v", b"").await;
    let read_only = zk::Acls::anyone_read();
    let r = bounded("bad aversion", c.set_acl("/v", &read_only, Some(3))).await;
    assert_eq!(r.unwrap_err(), zk::Error::BadVersion);
    let s1 = bounded("set acl", c.set_acl("/v", &read_only, Some(0)))
        .await
        .unwrap();
    assert_eq!(s1.aversion, 1);
    assert_eq!((s1.version, s1.cversion), (0, 0));
    assert_eq!(s1.mzxid, s0.mzxid, "an ACL change is not a data change");
    let r = bounded("missing", c.set_acl("/none", &read_only, None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    let r = bounded("missing", c.get_acl("/none")).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
}

#[tokio::test]
async fn unknown_auth_scheme_fails_the_session() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let r = bounded("auth", c.auth("nosuchscheme", b"x")).await;
    assert_eq!(r.unwrap_err(), zk::Error::AuthFailed);
    let r = bounded("get after auth failure", c.get_data("/")).await;
    assert_eq!(r.unwrap_err(), zk::Error::AuthFailed);
}

#[tokio::test]
async fn super_digest_user_bypasses_acls() {
    let superuser = digest_id("super:boss");
    let server = Server::start(&[("DigestAuthenticationProvider.superDigest", &superuser)]);
    let c = server.client().await;
    let acl = [zk::Acl::new(
        P::ALL,
        zk::AuthId::new("digest", &digest_id("carol:pw")),
    )];
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
    bounded("create", c.create("/locked", b"L", &opts))
        .await
        .unwrap();
    let admin = server.client().await;
    bounded("auth", admin.auth("digest", b"super:boss"))
        .await
        .unwrap();
    assert_eq!(
        bounded("get", admin.get_data("/locked")).await.unwrap().0,
        b"L"
    );
    bounded("set", admin.set_data("/locked", b"M", None))
        .await
        .unwrap();
    bounded(
        "set acl",
        admin.set_acl("/locked", &zk::Acls::anyone_all(), None),
    )
    .await
    .unwrap();
    assert_eq!(bounded("get", c.get_data("/locked")).await.unwrap().0, b"M");
}
