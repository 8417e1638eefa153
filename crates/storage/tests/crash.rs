//! Crash-restart through the real file system: a child process appends with group commit from
//! several threads and prints each index once it is reported durable; it is killed with
//! SIGKILL mid-run, and every record it reported durable must be in the reopened log, byte for
//! byte. Repeated on the same log with different timing and thread counts, so later runs
//! recover what earlier kills left behind (torn tails, half-made segments) and append after it.

#[path = "../src/torture_record.rs"]
mod torture_record;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use synod_storage::{Wal, WalOptions};
use torture_record::torture_record;

const SEGMENT_SIZE: u64 = 64 << 10;

/// `(index, run, thread, seq)` as acknowledged by the child.
type Ack = (u64, u32, u32, u64);

/// Runs the child until `kill_after` past its first acknowledgement, kills it, returns what it
/// acknowledged and what it said on stderr.
fn run_child(
    dir: &std::path::Path,
    run: u32,
    threads: u32,
    kill_after: Duration,
) -> (Vec<Ack>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synod-wal-torture"))
        .arg(dir)
        .arg(run.to_string())
        .arg(threads.to_string())
        .arg(SEGMENT_SIZE.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn synod-wal-torture");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        // Only complete lines count: a line is written with one write(2) after the record is
        // durable, but a cut-off one must not be misread as a shorter index.
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if line.last() == Some(&b'\n')
                && tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
            {
                break;
            }
            line.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let first =
        first.unwrap_or_else(|e| panic!("run {run}: no acknowledgement ({e}); stderr: {err}"));
    assert!(
        status.code().is_none(),
        "run {run}: the child was to die by the signal: {status}; stderr: {err}"
    );
    let acks = std::iter::once(first)
        .chain(rx.try_iter())
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (f[0], f[1] as u32, f[2] as u32, f[3])
        })
        .collect();
    (acks, err)
}

#[test]
fn every_record_reported_durable_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_size: SEGMENT_SIZE,
        ..WalOptions::default()
    };
    let mut acked: Vec<Ack> = Vec::new();
    let schedule = [(4, 40), (8, 250), (3, 120), (16, 400), (6, 5)];
    for (run, &(threads, ms)) in schedule.iter().enumerate() {
        let run = run as u32;
        let (acks, stderr) = run_child(dir.path(), run, threads, Duration::from_millis(ms));
        assert!(!acks.is_empty());
        acked.extend(acks);

        let (_, rec) = Wal::open(dir.path(), opts.clone()).unwrap_or_else(|e| {
            panic!("run {run}: reopen after SIGKILL failed: {e}; stderr: {stderr}")
        });
        let by_index: HashMap<u64, &[u8]> =
            rec.records.iter().map(|r| (r.index, &r.data[..])).collect();
        // Every acknowledged record is there with its exact bytes.
        for &(index, r, t, seq) in &acked {
            let got = by_index.get(&index).unwrap_or_else(|| {
                panic!("run {run}: acknowledged index {index} lost; {}", rec.report)
            });
            assert_eq!(
                *got,
                &torture_record(r, t, seq)[..],
                "run {run}: index {index}"
            );
        }
        // Everything in the log is a record some writer wrote, and each writer's records form
        // an unbroken sequence (a writer appends its next record only after the last is durable).
        let mut per_writer: BTreeMap<(u32, u32), Vec<u64>> = BTreeMap::new();
        for r in &rec.records {
            assert!(
                r.data.len() >= 16,
                "run {run}: index {}: not a torture record",
                r.index
            );
            let run_of = u32::from_le_bytes(r.data[0..4].try_into().unwrap());
            let thread = u32::from_le_bytes(r.data[4..8].try_into().unwrap());
            let seq = u64::from_le_bytes(r.data[8..16].try_into().unwrap());
            assert_eq!(
                r.data,
                torture_record(run_of, thread, seq),
                "run {run}: index {}",
                r.index
            );
            per_writer.entry((run_of, thread)).or_default().push(seq);
        }
        for (writer, seqs) in per_writer {
            let want: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(
                seqs, want,
                "run {run}: writer {writer:?} has holes or repeats"
            );
        }
        eprintln!(
            "run {run}: {threads} threads, killed {ms} ms in: {} acknowledged, {} records in {} segments; {}",
            acked.len(),
            rec.records.len(),
            rec.report.segments,
            rec.report
        );
    }
    assert!(
        acked.len() > 100,
        "the runs did too little to mean anything"
    );
}
