//! Crash-test helper: appends with group commit from several threads and prints
//! `INDEX RUN THREAD SEQ` on stdout for each record once it is reported durable, until killed.
//! The crash test kills it with SIGKILL and checks every printed record is in the log.
//!
//! Usage: `synod-wal-torture DIR RUN THREADS SEGMENT_SIZE`

use std::io::Write;
use std::process::ExitCode;
use synod_storage::{GroupCommitter, Wal, WalOptions};

#[path = "../torture_record.rs"]
mod torture_record;
use torture_record::torture_record;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| -> Option<(String, u32, u32, u64)> {
        Some((
            args.get(1)?.clone(),
            args.get(2)?.parse().ok()?,
            args.get(3)?.parse().ok()?,
            args.get(4)?.parse().ok()?,
        ))
    })();
    let Some((dir, run, threads, segment_size)) = parsed else {
        eprintln!("usage: synod-wal-torture DIR RUN THREADS SEGMENT_SIZE");
        return ExitCode::from(2);
    };
    let opts = WalOptions {
        segment_size,
        ..WalOptions::default()
    };
    let (wal, recovered) = match Wal::open(&dir, opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("synod-wal-torture: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("synod-wal-torture: opened: {}", recovered.report);
    let gc = match GroupCommitter::start(wal) {
        Ok(gc) => gc,
        Err(e) => {
            eprintln!("synod-wal-torture: {e}");
            return ExitCode::from(1);
        }
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let h = gc.handle();
            std::thread::spawn(move || {
                for seq in 0.. {
                    match h.append_durable(torture_record(run, t, seq)) {
                        Ok(index) => {
                            let mut out = std::io::stdout().lock();
                            if writeln!(out, "{index} {run} {t} {seq}")
                                .and_then(|()| out.flush())
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            eprintln!("synod-wal-torture: append failed: {e}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    ExitCode::from(1)
}
