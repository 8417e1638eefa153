//! Security as etcd users meet it, through the real etcdctl: TLS for clients, mutual TLS
//! between members that names each member's id, and users, roles and permissions.

use crate::common::{etcdctl, Cluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Retries `args` for up to 15 s (a fresh cluster elects a leader first).
fn until_ok<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> String {
    crate::common::etcdctl_until_ok(args, Duration::from_secs(15))
}

/// Runs `args`, which must fail with `want` in the output.
fn fails_with<S: AsRef<str> + std::fmt::Debug>(args: &[S], want: &str) {
    let (ok, out) = etcdctl(args);
    assert!(!ok, "etcdctl {args:?} should have failed: {out}");
    assert!(
        out.contains(want),
        "etcdctl {args:?}: wanted {want:?} in: {out}"
    );
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn auth_gates_every_request_by_the_users_permissions() {
    let cluster = Cluster::start(3);
    let eps = format!("--endpoints={}", cluster.endpoints().join(","));
    let e = |more: &[&str]| {
        std::iter::once(eps.clone())
            .chain(more.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
    };
    let run = |more: &[&str]| until_ok(&with(&e(more), &[]));
    run(&["user", "add", "root", "--new-user-password=rootpw"]);
    run(&["user", "grant-role", "root", "root"]);
    run(&["role", "add", "app"]);
    run(&[
        "role",
        "grant-permission",
        "app",
        "readwrite",
        "app/",
        "--prefix=true",
    ]);
    run(&["role", "grant-permission", "app", "read", "shared"]);
    run(&["user", "add", "alice", "--new-user-password=alicepw"]);
    run(&["user", "grant-role", "alice", "app"]);
    run(&["put", "secret", "s0"]);
    run(&["put", "shared", "x"]);
    assert!(run(&["auth", "enable"]).contains("Authentication Enabled"));

    let alice = e(&["--user=alice:alicepw"]);
    let root = e(&["--user=root:rootpw"]);
    let alice = |more: &[&str]| with(&alice, more);
    let root = |more: &[&str]| with(&root, more);
    let txn_base = alice(&[]);

    // No user at all: refused, as etcd refuses.
    fails_with(&with(&e(&[]), &["put", "app/x", "1"]), "user name is empty");
    fails_with(&with(&e(&[]), &["get", "shared"]), "user name is empty");
    // A wrong password.
    fails_with(
        &with(&e(&["--user=alice:wrong"]), &["get", "app/x"]),
        "authentication failed",
    );

    // Alice inside her permissions.
    assert_eq!(until_ok(&alice(&["put", "app/x", "1"])).trim(), "OK");
    assert!(until_ok(&alice(&["get", "app/x"])).contains('1'));
    assert!(until_ok(&alice(&["get", "shared"])).contains('x'));
    assert_eq!(until_ok(&alice(&["del", "app/x"])).trim(), "1");

    // ... and outside them: get, put, delete, watch, a range reaching past her prefix, a
    // write where she may only read.
    let denied = "permission denied";
    fails_with(&alice(&["get", "secret"]), denied);
    fails_with(&alice(&["get", "--consistency=s", "secret"]), denied);
    fails_with(&alice(&["put", "secret", "2"]), denied);
    fails_with(&alice(&["del", "secret"]), denied);
    fails_with(&alice(&["get", "app", "--prefix"]), denied);
    fails_with(&alice(&["put", "shared", "y"]), denied);
    fails_with(&alice(&["watch", "secret"]), denied);
    fails_with(&alice(&["user", "list"]), denied);
    fails_with(&alice(&["auth", "disable"]), denied);
    // The operator's calls are root's, as in etcd.
    let backup = cluster.dir.path().join("alice.db").display().to_string();
    let one = format!("--endpoints={}", cluster.endpoint(1));
    let save = [
        one.as_str(),
        "--user=alice:alicepw",
        "snapshot",
        "save",
        &backup,
    ];
    fails_with(&save, denied);
    fails_with(&alice(&["endpoint", "hashkv"]), denied);
    fails_with(&alice(&["defrag"]), denied);
    fails_with(&alice(&["alarm", "disarm"]), denied);
    assert!(until_ok(&root(&["endpoint", "hashkv"])).contains(", "));
    assert!(until_ok(&root(&["alarm", "list"])).trim().is_empty());

    // A transaction is checked key by key: its compare, and both branches.
    let txn = |args: &[String], script: &str| {
        let args: Vec<&str> = ["--command-timeout=5s"]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .chain(["txn"])
            .collect();
        crate::common::etcdctl_with(&args, Some(script))
    };
    let (ok, out) = txn(&txn_base, "value(\"secret\") = \"s0\"\n\nput app/t 1\n\n\n");
    assert!(!ok && out.contains(denied), "{out}");

    // Root may do everything, at any member.
    let other = format!("--endpoints={}", cluster.endpoint(2));
    let at2 = |more: &[&str]| {
        [other.as_str(), "--user=root:rootpw"]
            .into_iter()
            .chain(more.iter().copied())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        until_ok(&with(&at2(&["put", "secret", "s1"]), &[])).trim(),
        "OK"
    );
    assert!(until_ok(&root(&["get", "secret"])).contains("s1"));
    let users = until_ok(&root(&["user", "list"]));
    assert_eq!(users.lines().collect::<Vec<_>>(), ["alice", "root"]);
    assert!(until_ok(&root(&["role", "get", "app"])).contains("[app/, app0)"));

    // Alice changes her own password (not root's): the old one stops working.
    let passwd = |as_user: &[String], who: &str, new: &str| {
        let args: Vec<&str> = ["--command-timeout=5s"]
            .into_iter()
            .chain(as_user.iter().map(String::as_str))
            .chain(["user", "passwd", who, "--interactive=false"])
            .collect();
        crate::common::etcdctl_with(&args, Some(&format!("{new}\n")))
    };
    let (ok, out) = passwd(&alice(&[]), "root", "mine");
    assert!(!ok && out.contains(denied), "{out}");
    let (ok, out) = passwd(&alice(&[]), "alice", "alicepw2");
    assert!(ok, "{out}");
    fails_with(&alice(&["get", "app/x"]), "authentication failed");
    let alice2 = e(&["--user=alice:alicepw2"]);
    let alice = |more: &[&str]| with(&alice2, more);
    until_ok(&alice(&["get", "shared"]));

    // Revoking the role stops alice's next write; taking the permission away likewise.
    until_ok(&root(&["user", "revoke-role", "alice", "app"]));
    fails_with(&alice(&["put", "app/x", "2"]), denied);
    // Root cannot lock everyone out.
    fails_with(
        &root(&["user", "delete", "root"]),
        "invalid auth management",
    );

    // Hostile tokens: garbage, over our 4 KiB limit, over HTTP/2's 16 KiB header limit (the
    // HTTP/2 layer refuses that one: curl reports a reset stream or a closed connection). Each
    // is refused and the node serves the next request.
    for (len, want) in [
        (100, "grpc-status: 16"),
        (5_000, "grpc-status: 16"),
        (100_000, "curl: ("),
    ] {
        let out = grpc_with_token(&cluster.endpoint(1), &"t".repeat(len));
        assert!(
            out.contains(want),
            "a {len}-byte token: wanted {want:?} in {out}"
        );
        assert!(
            !out.contains("grpc-status: 0"),
            "a {len}-byte token was served: {out}"
        );
        assert!(until_ok(&root(&["get", "secret"])).contains("s1"));
    }

    assert!(until_ok(&root(&["auth", "disable"])).contains("Authentication Disabled"));
    assert_eq!(
        until_ok(&with(&e(&[]), &["put", "secret", "open"])).trim(),
        "OK"
    );
}

/// A raw gRPC Range of key `k` sent with `token`, by curl over HTTP/2; curl's headers and
/// errors.
fn grpc_with_token(endpoint: &str, token: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    // The gRPC frame: uncompressed, 3 bytes long, holding RangeRequest { key: "k" }.
    let body = dir.path().join("range.bin");
    std::fs::write(&body, [0, 0, 0, 0, 3, 0x0a, 1, b'k']).unwrap();
    let header = dir.path().join("token.txt");
    std::fs::write(&header, format!("token: {token}\n")).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--http2-prior-knowledge",
            "-X",
            "POST",
        ])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("-H")
        .arg(format!("@{}", header.display()))
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{endpoint}/etcdserverpb.KV/Range"))
        .output()
        .expect("curl is not installed: `apt-get install curl`");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The certificates `synod certs` writes, in a fresh directory.
fn certs(dir: &Path, nodes: u64) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["certs", "--nodes", &nodes.to_string(), "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

fn tls_flags(dir: &Path, peer_cert: &str) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    vec![
        "--cert-file".into(),
        p("node{id}.pem"),
        "--key-file".into(),
        p("node{id}-key.pem"),
        "--trusted-ca-file".into(),
        p("ca.pem"),
        "--client-cert-auth".into(),
        "--peer-cert-file".into(),
        p(&format!("{peer_cert}.pem")),
        "--peer-key-file".into(),
        p(&format!("{peer_cert}-key.pem")),
        "--peer-trusted-ca-file".into(),
        p("ca.pem"),
    ]
}

/// A client certificate for `cn`, signed by the CA in `ca_dir` (a new CA if none), expired
/// if asked.
fn client_cert(
    dir: &Path,
    name: &str,
    ca_dir: Option<&Path>,
    cn: &str,
    expired: bool,
) -> (String, String) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let issuer = match ca_dir {
        Some(ca_dir) => {
            let key_pem = std::fs::read_to_string(ca_dir.join("ca-key.pem")).unwrap();
            let cert_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
            Issuer::from_ca_cert_pem(&cert_pem, KeyPair::from_pem(&key_pem).unwrap()).unwrap()
        }
        None => {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            Issuer::new(p, KeyPair::generate().unwrap())
        }
    };
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (
        format!("--cert={}", c.display()),
        format!("--key={}", k.display()),
    )
}

#[test]
fn tls_clients_need_the_clusters_ca_and_a_valid_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = certs(&tmp.path().join("tls"), 3);
    let flags = tls_flags(&dir, "node{id}");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start_with(3, &flags);
    let https: Vec<String> = cluster
        .all_endpoints()
        .iter()
        .map(|e| format!("https://{e}"))
        .collect();
    let eps = format!("--endpoints={}", https.join(","));
    let p = |f: &str| dir.join(f).display().to_string();
    let (ca, cert, key) = (
        format!("--cacert={}", p("ca.pem")),
        format!("--cert={}", p("client.pem")),
        format!("--key={}", p("client-key.pem")),
    );
    let good = [eps.as_str(), &ca, &cert, &key];
    assert_eq!(until_ok(&with_strs(&good, &["put", "k", "v"])).trim(), "OK");
    assert!(until_ok(&with_strs(&good, &["get", "k"])).contains('v'));

    let deadline = "context deadline exceeded";
    // Plaintext to a TLS port.
    let plain = format!("--endpoints={}", cluster.all_endpoints().join(","));
    fails_with(&[plain.as_str(), "get", "k"], deadline);
    // TLS without a client certificate.
    fails_with(&[eps.as_str(), &ca, "get", "k"], deadline);
    // A client certificate from another CA, and an expired one from the right CA.
    let (oc, ok_) = client_cert(tmp.path(), "stranger", None, "root", false);
    fails_with(&[eps.as_str(), &ca, &oc, &ok_, "get", "k"], deadline);
    let (xc, xk) = client_cert(tmp.path(), "expired", Some(&dir), "root", true);
    fails_with(&[eps.as_str(), &ca, &xc, &xk, "get", "k"], deadline);
    // A client that trusts another CA refuses the servers.
    let other = certs(&tmp.path().join("other"), 1);
    let wrong_ca = format!("--cacert={}", other.join("ca.pem").display());
    fails_with(
        &[eps.as_str(), &wrong_ca, &cert, &key, "get", "k"],
        deadline,
    );

    // Admin HTTP is served over TLS too, with the same client-certificate rule.
    let admin = format!("https://127.0.0.1:{}/health", cluster.admin_ports[0]);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl is not installed: `apt-get install curl`");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ca_pem, cert_pem, key_pem) = (p("ca.pem"), p("client.pem"), p("client-key.pem"));
    let with_cert = ["--cacert", &ca_pem, "--cert", &cert_pem, "--key", &key_pem];
    let (ok, out) = curl(&[&with_cert[..], &[admin.as_str()]].concat());
    assert!(ok && out.contains("ok"), "admin over TLS: {out}");
    let (ok, out) = curl(&["--cacert", &ca_pem, &admin]);
    assert!(!ok, "admin without a client certificate: {out}");
    let plain_admin = admin.replace("https", "http");
    let (ok, out) = curl(&[&plain_admin]);
    assert!(!ok || !out.contains("ok"), "admin over plaintext: {out}");

    // Garbage on the client and peer ports: the nodes keep serving.
    garbage(cluster.endpoint(1).parse().unwrap());
    garbage(cluster.peer_endpoint(1).parse().unwrap());
    assert!(until_ok(&with_strs(&good, &["get", "k"])).contains('v'));

    // With auth on, a verified certificate's common name is the user, as in etcd: the
    // client certificate `synod certs` writes is root's.
    until_ok(&with_strs(
        &good,
        &["user", "add", "root", "--new-user-password=pw"],
    ));
    until_ok(&with_strs(&good, &["user", "grant-role", "root", "root"]));
    until_ok(&with_strs(&good, &["auth", "enable"]));
    assert_eq!(
        until_ok(&with_strs(&good, &["put", "k", "root"])).trim(),
        "OK"
    );
    let (ac, ak) = client_cert(tmp.path(), "alice", Some(&dir), "alice", false);
    let alice = [eps.as_str(), &ca, &ac, &ak];
    fails_with(&with_strs(&alice, &["get", "k"]), "permission denied");
    until_ok(&with_strs(&good, &["auth", "disable"]));

    // The nodes keep talking to each other after the garbage on node 1's peer port.
    assert_eq!(
        until_ok(&with_strs(&good, &["put", "k", "after"])).trim(),
        "OK"
    );

    // The cluster still commits with one node restarted over TLS.
    cluster.kill(3);
    cluster.restart(3);
    assert_eq!(until_ok(&with_strs(&good, &["put", "k", "w"])).trim(), "OK");
}

fn with_strs<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(b).copied().collect()
}

/// Writes random bytes, then a TLS-looking hello with nonsense, to `addr`.
fn garbage(addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..20_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for prefix in [&[][..], &[0x16, 0x03, 0x01, 0xff, 0xff][..]] {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(prefix);
            let _ = s.write_all(&bytes);
        }
    }
}

/// The status page's JSON for node `i`, over TLS with the client certificate in `dir` (admin
/// HTTP is served over TLS when the clients' API is).
fn status(cluster: &Cluster, i: u64, dir: &Path) -> serde_json::Value {
    let p = |f: &str| dir.join(f).display().to_string();
    let url = format!(
        "https://127.0.0.1:{}/status",
        cluster.admin_ports[(i - 1) as usize]
    );
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", &p("ca.pem")])
        .args([
            "--cert",
            &p("client.pem"),
            "--key",
            &p("client-key.pem"),
            &url,
        ])
        .output()
        .expect("curl is not installed: `apt-get install curl`");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn a_peer_must_hold_a_certificate_naming_its_own_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = certs(&tmp.path().join("tls"), 3);
    let good = tls_flags(&dir, "node{id}");
    let good_strs: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start_with(3, &good_strs);
    let p = |f: &str| dir.join(f).display().to_string();
    let client = [
        format!("--endpoints=https://{}", cluster.endpoint(1)),
        format!("--cacert={}", p("ca.pem")),
        format!("--cert={}", p("client.pem")),
        format!("--key={}", p("client-key.pem")),
    ];
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    until_ok(&with_strs(&client, &["put", "k", "1"]));

    // Node 3 comes back holding node 2's certificate: the CA vouches for it, but it names
    // node 2, so neither side talks to it.
    cluster.kill(3);
    let applied = |c: &Cluster| status(c, 3, &dir)["applied_index"].as_u64().unwrap_or(0);
    cluster.restart_with(3, &tls_flags(&dir, "node2"));
    for i in 2..=6 {
        until_ok(&with_strs(&client, &["put", "k", &i.to_string()]));
    }
    std::thread::sleep(Duration::from_secs(3));
    let before = applied(&cluster);
    // The page is read (it answers with its id), so "nothing new applied" means something.
    assert_eq!(status(&cluster, 3, &dir)["id"], 3, "node 3's status page");
    until_ok(&with_strs(&client, &["put", "k", "7"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        applied(&cluster),
        before,
        "the impostor still learns new slots"
    );
    let log1 = std::fs::read_to_string(cluster.log_path(1)).unwrap();
    let refusal = "claims to be node 3, but its certificate does not name node3.synod";
    assert_eq!(
        log1.matches(refusal).count(),
        1,
        "the refusal is logged once, not per retry:\n{log1}"
    );
    assert!(
        log1.contains("connecting to node 3"),
        "node 1 refuses node 3's server certificate too:\n{log1}"
    );

    // Node 3 with no peer certificate at all (plaintext to TLS peers).
    cluster.kill(3);
    let client_only: Vec<String> = good[..7].to_vec();
    cluster.restart_with(3, &client_only);
    until_ok(&with_strs(&client, &["put", "k", "8"]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applied(&cluster), before, "a peer without TLS still learns");

    // With its own certificate it catches up.
    cluster.kill(3);
    cluster.restart(3);
    let deadline = Instant::now() + Duration::from_secs(20);
    while applied(&cluster) <= before {
        assert!(Instant::now() < deadline, "node 3 never caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_tls_files_stop_the_server_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = certs(&tmp.path().join("tls"), 1);
    let junk = tmp.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let ports = crate::common::free_ports(2);
    let server = |extra: &[String]| {
        let out = Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["server", "--id", "1"])
            .arg(format!("--peers=1=127.0.0.1:{}", ports[0]))
            .arg(format!("--listen-client=127.0.0.1:{}", ports[1]))
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let junk = junk.display().to_string();
    let empty = empty.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            s(&["--cert-file", &junk, "--key-file", &p("node1-key.pem")]),
            "--cert-file",
        ),
        (
            s(&["--cert-file", &empty, "--key-file", &p("node1-key.pem")]),
            "holds no PEM certificate",
        ),
        (
            s(&["--cert-file", &p("node1.pem"), "--key-file", &empty]),
            "--key-file",
        ),
        (
            s(&[
                "--cert-file",
                "/nonexistent.pem",
                "--key-file",
                &p("node1-key.pem"),
            ]),
            "cannot read --cert-file /nonexistent.pem",
        ),
        (
            s(&[
                "--cert-file",
                &p("node1.pem"),
                "--key-file",
                &p("client-key.pem"),
            ]),
            "client TLS",
        ),
        (
            s(&["--cert-file", &p("node1.pem")]),
            "--cert-file needs --key-file",
        ),
        (
            s(&[
                "--cert-file",
                &p("node1.pem"),
                "--key-file",
                &p("node1-key.pem"),
                "--client-cert-auth",
            ]),
            "--client-cert-auth needs --trusted-ca-file",
        ),
        (
            s(&[
                "--peer-cert-file",
                &p("node1.pem"),
                "--peer-key-file",
                &p("node1-key.pem"),
            ]),
            "--peer-trusted-ca-file",
        ),
        (
            s(&[
                "--peer-cert-file",
                &p("node1.pem"),
                "--peer-key-file",
                &p("node1-key.pem"),
                "--peer-trusted-ca-file",
                &junk,
            ]),
            "--peer-trusted-ca-file",
        ),
        (s(&["--auth-token", "jwt,sign-method=none"]), "--auth-token"),
    ];
    for (args, want) in cases {
        let err = server(&args);
        assert!(err.contains(want), "{args:?}: wanted {want:?} in: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn jwt_tokens_signed_with_the_members_key_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (private, public) = (tmp.path().join("jwt.key"), tmp.path().join("jwt.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let spec = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=1m",
        public.display(),
        private.display()
    );
    let cluster = Cluster::start_with(3, &[&spec]);
    let eps = format!("--endpoints={}", cluster.endpoints().join(","));
    let e = |more: &[&str]| with(std::slice::from_ref(&eps), more);
    until_ok(&e(&["user", "add", "root", "--new-user-password=pw"]));
    until_ok(&e(&["user", "grant-role", "root", "root"]));
    until_ok(&e(&["auth", "enable"]));
    let root = e(&["--user=root:pw"]);
    assert_eq!(until_ok(&with(&root, &["put", "k", "v"])).trim(), "OK");
    assert!(until_ok(&with(&root, &["get", "k"])).contains('v'));
    fails_with(&e(&["put", "k", "w"]), "user name is empty");
    fails_with(
        &e(&["--user=root:nope", "get", "k"]),
        "authentication failed",
    );
    // Each member signs and checks with the same pair: log in at each one alone.
    for i in 2..=3 {
        let one = [
            format!("--endpoints={}", cluster.endpoint(i)),
            "--user=root:pw".into(),
        ];
        assert!(until_ok(&with(&one, &["get", "k"])).contains('v'));
    }
}
