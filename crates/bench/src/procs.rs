//! Child processes that never outlive the benchmark, and the free ports they listen on.

use crate::error::{BenchError, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed (and reaped) when the guard is dropped: on success, on error and on
/// Ctrl-C alike, as long as the caller drops its guards before exiting.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `cmd` with its standard output and error going to `log`.
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: &Path) -> Result<Self> {
        let name = name.into();
        let out = std::fs::File::create(log).map_err(|e| BenchError::file(log, e))?;
        let err = out.try_clone().map_err(|e| BenchError::file(log, e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| BenchError::process(format!("cannot start {name} ({cmd:?})"), e))?;
        Ok(ChildGuard {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for the process to end by itself (and kills it after that).
    pub fn wait_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    return self
                        .child
                        .wait()
                        .map_err(|e| BenchError::process(format!("waiting for {}", self.name), e));
                }
                Err(e) => return Err(BenchError::process(format!("waiting for {}", self.name), e)),
            }
        }
    }

    /// None while running; otherwise a description of how it ended and the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); the end of its log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            )),
            Ok(None) => None,
            Err(e) => Some(format!("{} cannot be waited for: {e}", self.name)),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SIGKILL: the data lives in a temporary directory that is removed next, so a clean
        // shutdown would buy nothing and could hang.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where ports for servers are taken from: below the kernel's ephemeral range (Linux's
/// default is 32768-60999), from which the local port of every outbound connection and every
/// `bind(0)` comes. A port taken from that range and released for a server to bind could be
/// taken by any outbound connection in between (a cluster's own peer connections make many),
/// and the server then fails to listen; it happened to a test.
const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// `n` distinct loopback ports, free when chosen and never handed out twice by this process
/// (tests run in parallel, each starting servers), taken from [`SERVER_PORTS`]. Another
/// process could still bind one before the server does, which the readiness check reports.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Where this process starts in the range, so that processes running one after another
    // or side by side begin at different places.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(SERVER_PORTS.end - SERVER_PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut out = Vec::with_capacity(n);
    let mut tried = 0;
    while out.len() < n && tried < span {
        tried += 1;
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = SERVER_PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    if out.len() == n {
        return Ok(out);
    }
    Err(BenchError::process(
        "cannot find free ports on 127.0.0.1",
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("fewer than {n} free in {SERVER_PORTS:?}"),
        ),
    ))
}

/// User plus system CPU time process `pid` has used so far, all its threads together, read
/// from `/proc/PID/stat`; none once the process is gone, or without procfs.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_cpu_ticks(&text)?;
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some(std::time::Duration::from_secs_f64(ticks as f64 / hz))
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/PID/stat` line. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`: the first after it is field 3.
fn stat_cpu_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The full path of `program` if it is on the PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 269 0 0 20 0 9 0";
        assert_eq!(stat_cpu_ticks(line), Some(1000));
        assert_eq!(stat_cpu_ticks("4242 (cut short) S 1 2"), None);
        assert_eq!(stat_cpu_ticks("no name at all"), None);
    }

    #[test]
    fn this_process_cpu_time_grows_as_it_works() {
        let me = std::process::id();
        let before = cpu_time(me).expect("procfs");
        // Busy until the clock (which counts in ticks of 10 ms or so) moves; on a crowded
        // machine that may take a while, so the limit is generous.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after <= before && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = cpu_time(me).expect("procfs");
        }
        assert!(after > before, "{before:?} then {after:?}");
        assert!(cpu_time(u32::MAX).is_none(), "no such process");
    }

    #[test]
    fn free_ports_are_distinct_across_calls_and_outside_the_ephemeral_range() {
        let mut p = free_ports(8).expect("ports");
        p.extend(free_ports(8).expect("ports"));
        assert!(p.iter().all(|port| SERVER_PORTS.contains(port)), "{p:?}");
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 16);
    }

    #[test]
    fn a_guard_kills_its_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut g = ChildGuard::spawn("sleep", cmd, &dir.path().join("sleep.log")).expect("spawn");
        assert!(g.exited().is_none());
        let pid = g.pid();
        drop(g);
        // After the guard, the pid is reaped: /proc no longer lists it (or lists another
        // process that reused the number, which is not a sleep of ours).
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!cmdline.starts_with("sleep"), "sleep {pid} still running");
    }
}
