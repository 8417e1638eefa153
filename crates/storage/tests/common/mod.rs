//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use synod_storage::{Record, Wal, WalOptions};

/// Options with small segments, so a few records span several of them.
pub fn small(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        ..WalOptions::default()
    }
}

/// A deterministic payload for record number `i` of a test, of a length that varies.
pub fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 7) % 61) as usize;
    (0..len).map(|k| (i as usize * 31 + k * 7) as u8).collect()
}

/// Writes `n` records with [`payload`] and syncs; returns them as the log should hold them.
pub fn write_log(dir: &Path, opts: &WalOptions, n: u64) -> Vec<Record> {
    let (mut wal, rec) = Wal::open(dir, opts.clone()).unwrap();
    assert!(rec.records.is_empty());
    let mut out = Vec::new();
    for i in 0..n {
        let data = payload(i);
        let index = wal.append(&data).unwrap();
        out.push(Record { index, data });
    }
    wal.sync().unwrap();
    out
}

/// The segment files of a log directory, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// The first index a segment's file name stands for.
pub fn first_index_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Copies the plain files of `from` into the (existing) directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    copy_dir_replacing(from, to, "", &[]);
}

/// Copies the plain files of `from` into the (existing) directory `to`, but writes `bytes` as
/// the file called `name`. (Writing new files: truncating and rewriting existing ones makes
/// ext4 flush them on close, which makes byte-by-byte tests crawl.)
pub fn copy_dir_replacing(from: &Path, to: &Path, name: &str, bytes: &[u8]) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let file_name = p.file_name().unwrap();
        if file_name == name {
            std::fs::write(to.join(file_name), bytes).unwrap();
        } else if p.is_file() {
            std::fs::copy(&p, to.join(file_name)).unwrap();
        }
    }
}

/// `(start, end)` byte ranges of the frames in a segment holding `payload_lens`, in order.
pub fn frame_ranges(payload_lens: &[usize]) -> Vec<(usize, usize)> {
    let mut at = synod_storage::segment::SEGMENT_HEADER_LEN;
    payload_lens
        .iter()
        .map(|&len| {
            let start = at;
            at += synod_storage::record::frame_len(len);
            (start, at)
        })
        .collect()
}
