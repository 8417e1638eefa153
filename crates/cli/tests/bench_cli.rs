//! `synod bench run` refuses what it cannot measure before it starts any load.

use std::process::Command;

#[test]
fn server_pids_that_cannot_be_read_are_refused_up_front() {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "bench",
            "run",
            "--endpoints",
            "127.0.0.1:1",
            "--server-pids",
            &std::process::id().to_string(),
        ])
        .arg("--server-pids=4294967295")
        .output()
        .expect("synod runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the CPU time of process 4294967295"),
        "{err}"
    );
}
