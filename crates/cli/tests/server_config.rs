//! `synod server` configuration: flags over SYNOD_* variables over the TOML file over defaults.

use std::process::Command;

fn print_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
    cmd.arg("server").args(args).arg("--print-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One setting of a one-member server's printed configuration, given `extra` flags and `env`.
fn setting(extra: &[&str], env: &[(&str, &str)], name: &str) -> serde_json::Value {
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:7001"];
    let (ok, out) = print_config(&[&peers[..], extra].concat(), env);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[name].clone()
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    std::fs::write(
        &file,
        "id = 2\npeers = \"1=127.0.0.1:7001,2=127.0.0.1:7002\"\nwindow = 7\nmax_batch = 9\ntick_ms = 20\nsnapshot_pace = 3\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out) = print_config(
        &["--config", f, "--window", "5"],
        &[("SYNOD_MAX_BATCH", "11")],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], 2, "from the file");
    assert_eq!(v["window"], 5, "the flag beats the file");
    assert_eq!(v["max_batch"], 11, "the environment beats the file");
    assert_eq!(v["tick"]["nanos"], 20_000_000, "from the file");
    assert_eq!(v["snapshot_pace"], 3, "from the file");
    assert_eq!(v["heartbeat_ticks"], 5, "default");
    assert_eq!(v["client_addr"], "127.0.0.1:2379", "default");
}

#[test]
fn the_auxiliary_digest_threshold_takes_bytes_or_off_from_flag_env_and_file() {
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:7001"];
    let digest_min = |extra: &[&str], env: &[(&str, &str)]| setting(extra, env, "aux_digest_min");
    assert_eq!(digest_min(&[], &[]), 16384, "default");
    assert_eq!(digest_min(&["--aux-digest-min", "0"], &[]), 0);
    assert!(digest_min(&["--aux-digest-min", "off"], &[]).is_null());
    assert_eq!(digest_min(&[], &[("SYNOD_AUX_DIGEST_MIN", "4096")]), 4096);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    for (line, want) in [
        ("aux_digest_min = 1000", serde_json::json!(1000)),
        ("aux_digest_min = \"off\"", serde_json::Value::Null),
    ] {
        std::fs::write(&file, line).unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(digest_min(&["--config", f], &[]), want, "{line}");
    }
    let (ok, out) = print_config(&[&peers[..], &["--aux-digest-min", "big"]].concat(), &[]);
    assert!(
        !ok && out.contains("is not a size in bytes or 'off'"),
        "{out}"
    );
    std::fs::write(&file, "aux_digest_min = \"big\"").unwrap();
    let f = file.to_str().unwrap();
    let (ok, out) = print_config(&[&peers[..], &["--config", f]].concat(), &[]);
    assert!(!ok && out.contains("aux_digest_min"), "{out}");
}

/// A `quorum`/`all` setting (`key` in the TOML file and the printed configuration, `--flag`,
/// `env`): `quorum` by default; `all` by flag, environment or file; the flag over the file;
/// anything else refused naming the flag.
fn quorum_unless_told_all(key: &str, flag: &str, env: &str) {
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:7001"];
    let setting = |extra: &[&str], env: &[(&str, &str)]| {
        let (ok, out) = print_config(&[&peers[..], extra].concat(), env);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[key].clone()
    };
    assert_eq!(setting(&[], &[]), "quorum", "{key}: default");
    assert_eq!(setting(&[flag, "all"], &[]), "all");
    assert_eq!(setting(&[], &[(env, "all")]), "all");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    std::fs::write(&file, format!("{key} = \"all\"")).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(setting(&["--config", f], &[]), "all");
    assert_eq!(setting(&["--config", f, flag, "quorum"], &[]), "quorum");
    let (ok, out) = print_config(&[&peers[..], &[flag, "some"]].concat(), &[]);
    assert!(!ok && out.contains(flag), "{out}");
}

#[test]
fn read_probes_are_a_quorum_unless_told_all_by_flag_env_or_file() {
    quorum_unless_told_all("read_probes", "--read-probes", "SYNOD_READ_PROBES");
}

#[test]
fn accept_targets_are_a_quorum_unless_told_all_by_flag_env_or_file() {
    quorum_unless_told_all("accept_targets", "--accept-targets", "SYNOD_ACCEPT_TARGETS");
}

#[test]
fn bad_configuration_is_explained() {
    let (ok, out) = print_config(&["--id", "3", "--peers", "1=127.0.0.1:7001"], &[]);
    assert!(
        !ok && out.contains("node 3 is not listed in --peers"),
        "{out}"
    );
    let (ok, out) = print_config(&["--id", "1", "--peers", "1=localhost"], &[]);
    assert!(!ok && out.contains("is not HOST:PORT"), "{out}");
    let (ok, out) = print_config(&["--id", "1"], &[]);
    assert!(!ok && out.contains("--peers is required"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "id = 1\nwindoww = 3\n").unwrap();
    let (ok, out) = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok && out.contains("not a valid Synod config"), "{out}");
}

#[test]
fn tls_and_auth_settings_come_from_flags_environment_and_file_by_etcds_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    std::fs::write(
        &file,
        "id = 1\npeers = \"1=127.0.0.1:7001\"\ncert_file = \"/f/server.pem\"\nkey_file = \"/f/server-key.pem\"\n\
         trusted_ca_file = \"/f/ca.pem\"\nclient_cert_auth = true\npeer_cert_file = \"/f/peer.pem\"\n\
         peer_key_file = \"/f/peer-key.pem\"\npeer_trusted_ca_file = \"/f/peer-ca.pem\"\nauth_token_ttl = 60\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out) = print_config(
        &["--config", f, "--cert-file", "/flag/server.pem"],
        &[("SYNOD_AUTH_TOKEN", "jwt,sign-method=HS256,priv-key=/k")],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["client_tls"]["cert"], "/flag/server.pem",
        "the flag beats the file"
    );
    assert_eq!(v["client_tls"]["key"], "/f/server-key.pem");
    assert_eq!(v["client_tls"]["trusted_ca"], "/f/ca.pem");
    assert_eq!(v["client_tls"]["client_cert_auth"], true);
    assert_eq!(v["peer_tls"]["cert"], "/f/peer.pem");
    assert_eq!(v["peer_tls"]["trusted_ca"], "/f/peer-ca.pem");
    assert_eq!(
        v["peer_tls"]["client_cert_auth"], true,
        "always, between peers"
    );
    assert_eq!(v["auth_token"], "jwt,sign-method=HS256,priv-key=/k");
    assert_eq!(v["auth_token_ttl"]["secs"], 60);
    assert_eq!(v["snapshot_pace"], 6, "default");
    // Without any of it: plaintext and simple tokens.
    let (ok, out) = print_config(&["--id", "1", "--peers", "1=127.0.0.1:7001"], &[]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["client_tls"].is_null() && v["peer_tls"].is_null(), "{v}");
    assert_eq!(v["auth_token"], "simple");
}

#[test]
fn notices_are_held_a_tick_unless_told_otherwise_by_flag_env_or_file() {
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:7001"];
    let ticks = |extra: &[&str], env: &[(&str, &str)]| {
        let (ok, out) = print_config(&[&peers[..], extra].concat(), env);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["notice_ticks"].clone()
    };
    assert_eq!(ticks(&[], &[]), 1, "default");
    assert_eq!(ticks(&["--notice-ticks", "0"], &[]), 0);
    assert_eq!(ticks(&[], &[("SYNOD_NOTICE_TICKS", "3")]), 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    std::fs::write(&file, "notice_ticks = 2").unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(ticks(&["--config", f], &[]), 2);
    assert_eq!(ticks(&["--config", f, "--notice-ticks", "0"], &[]), 0);
    let (ok, out) = print_config(&[&peers[..], &["--notice-ticks", "soon"]].concat(), &[]);
    assert!(!ok && out.contains("--notice-ticks"), "{out}");
}

#[test]
fn auto_compaction_reads_etcds_two_flags_from_flag_env_and_file() {
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:7001"];
    let auto = |extra: &[&str], env: &[(&str, &str)]| setting(extra, env, "auto_compaction");
    let periodic = |secs: u64| serde_json::json!({"periodic": {"secs": secs, "nanos": 0}});
    assert_eq!(auto(&[], &[]), "off", "default");
    assert_eq!(auto(&["--auto-compaction-retention", "0"], &[]), "off");
    // A bare number is hours in periodic mode, as etcd reads it.
    assert_eq!(
        auto(&["--auto-compaction-retention", "1"], &[]),
        periodic(3600)
    );
    assert_eq!(
        auto(&["--auto-compaction-retention", "30m"], &[]),
        periodic(1800)
    );
    assert_eq!(
        auto(&[], &[("SYNOD_AUTO_COMPACTION_RETENTION", "90s")]),
        periodic(90)
    );
    assert_eq!(
        auto(
            &[
                "--auto-compaction-mode",
                "revision",
                "--auto-compaction-retention",
                "1000"
            ],
            &[]
        ),
        serde_json::json!({"revisions": 1000})
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synod.toml");
    std::fs::write(
        &file,
        "auto_compaction_mode = \"revision\"\nauto_compaction_retention = \"5\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        auto(&["--config", f], &[]),
        serde_json::json!({"revisions": 5})
    );

    let refused = |extra: &[&str], want: &str| {
        let (ok, out) = print_config(&[&peers[..], extra].concat(), &[]);
        assert!(!ok && out.contains(want), "{extra:?}: {out}");
    };
    refused(
        &["--auto-compaction-retention", "soon"],
        "periodic mode keeps a duration",
    );
    refused(
        &[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention=-3",
        ],
        "revision mode keeps a positive number",
    );
    refused(
        &[
            "--auto-compaction-mode",
            "weekly",
            "--auto-compaction-retention",
            "1",
        ],
        "weekly",
    );
    // Fast Multi-Paxos compacts too.
    assert_eq!(
        auto(
            &[
                "--protocol",
                "fast-multi",
                "--auto-compaction-retention",
                "1h"
            ],
            &[]
        ),
        periodic(3600)
    );
}
