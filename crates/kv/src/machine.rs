//! The store as the state machine of a Multi-Paxos log.

use crate::auth::AuthCommand;
use crate::detached::Detached;
use crate::error::KvError;
use crate::lease::Expiry;
use crate::maintenance::{Alarm, AlarmCommand};
use crate::store::Store;
use crate::types::*;
use serde::{Deserialize, Serialize};
use synod_core::multi::{EncodeState, StateEncoder, StateMachine};

/// A command in the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// A linearizable read, ordered with the writes (only when no read index can be had, so
    /// rare). Boxed because it is the largest request: unboxed, every command a log holds
    /// until the next snapshot took its 104 bytes, a put 72 (encoded the same either way).
    Range(Box<RangeRequest>),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// A compaction.
    Compact(CompactionRequest),
    /// Grant a lease: the proposing server picks the id and clamps the TTL.
    LeaseGrant {
        /// The lease id (positive).
        id: i64,
        /// Seconds.
        ttl: i64,
    },
    /// Revoke a lease and delete its keys.
    LeaseRevoke {
        /// The lease.
        id: i64,
    },
    /// Keep a lease alive: ordered through the log so that every replica (and so any future
    /// leader) sees the refresh.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// Read a lease's granted TTL and keys, ordered with the writes.
    LeaseQuery {
        /// The lease.
        id: i64,
    },
    /// List every lease, ordered with the writes.
    LeaseList,
    /// The leader's clock says this lease ran out after `refreshes` keep-alives.
    LeaseExpire {
        /// The lease.
        id: i64,
        /// Keep-alives the leader had applied when it decided.
        refreshes: u64,
    },
    /// A change to users, roles or the auth switch.
    Auth(AuthCommand),
    /// `cmd` on behalf of an authenticated user: checked against the user's permissions when
    /// applied, so a revoked permission stops every write ordered after the revocation.
    /// Commands without it run as no user, which auth-enabled stores refuse.
    As {
        /// The user's name.
        user: String,
        /// The command.
        #[serde(deserialize_with = "crate::nesting::boxed")]
        cmd: Box<KvCommand>,
    },
    /// List, raise or disarm alarms.
    Alarm(AlarmCommand),
}

impl KvCommand {
    /// The command itself, without the user it runs as.
    pub fn inner(&self) -> &KvCommand {
        match self {
            KvCommand::As { cmd, .. } => cmd.inner(),
            other => other,
        }
    }

    /// The command itself, without the user it runs as, to change.
    pub fn inner_mut(&mut self) -> &mut KvCommand {
        match self {
            KvCommand::As { cmd, .. } => cmd.inner_mut(),
            other => other,
        }
    }

    /// Runs `self` as `user` (no user: as it is).
    pub fn run_as(self, user: Option<String>) -> KvCommand {
        match user {
            Some(user) => KvCommand::As {
                user,
                cmd: Box::new(self),
            },
            None => self,
        }
    }
}

/// The result of a command, with the store's revision after it (etcd's response header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOutput {
    /// The revision after the command.
    pub revision: i64,
    /// What the command returned.
    pub result: Result<KvResult, KvError>,
}

/// A successful command's response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// Range.
    Range(RangeResponse),
    /// Put.
    Put(PutResponse),
    /// DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Txn.
    Txn(TxnResponse),
    /// Compact.
    Compacted,
    /// LeaseGrant: the id and TTL granted.
    LeaseGranted {
        /// Lease id.
        id: i64,
        /// Seconds.
        ttl: i64,
    },
    /// LeaseRevoke.
    LeaseRevoked,
    /// LeaseKeepAlive: the lease's granted TTL.
    LeaseKeptAlive {
        /// Seconds.
        ttl: i64,
    },
    /// LeaseExpire.
    LeaseExpiry(Expiry),
    /// LeaseQuery: granted TTL and attached keys.
    LeaseInfo {
        /// Seconds granted.
        ttl: i64,
        /// Attached keys.
        keys: Vec<Vec<u8>>,
    },
    /// LeaseList: every lease id.
    Leases(Vec<i64>),
    /// An auth change was made.
    AuthChanged,
    /// The alarms an alarm command concerned.
    Alarms(Vec<Alarm>),
}

impl StateMachine for Store {
    type Command = KvCommand;
    type Output = KvOutput;

    fn apply(&mut self, cmd: &KvCommand) -> KvOutput {
        let result = self.apply_as(None, cmd);
        KvOutput {
            revision: self.revision(),
            result,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.snapshot_with(&mut |_| {})
    }

    fn snapshot_later(&self) -> StateEncoder {
        Box::new(SnapshotCopy(self.shared_copy()))
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let mut store = match crate::layers::restore(bytes) {
            Some(layered) => layered?,
            None => Store::read_whole(bytes)?,
        };
        store.check_restored()?;
        store.rebuild_index();
        store.encoded_len.set(bytes.len());
        Ok(store)
    }
}

/// A store's copy taken for a snapshot, encoded later ([`StateMachine::snapshot_later`]).
struct SnapshotCopy(Store);

impl EncodeState for SnapshotCopy {
    fn to_vec(self: Box<Self>, progress: &mut dyn FnMut(usize)) -> Vec<u8> {
        let copy = Detached::new(self.0);
        copy.store.encode_with(&copy, progress)
    }

    fn to_writer(
        self: Box<Self>,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<u64> {
        let copy = Detached::new(self.0);
        copy.store.encode_into(&copy, out, progress)
    }

    /// Lays what changed since `base` on a copy of it where it can ([`crate::layers`]).
    fn to_vec_after(self: Box<Self>, base: &[u8], progress: &mut dyn FnMut(usize)) -> Vec<u8> {
        let mut out = Vec::new();
        self.to_writer_after(base, &mut out, progress)
            .expect("a vector takes every write");
        out
    }

    fn to_writer_after(
        self: Box<Self>,
        base: &[u8],
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<u64> {
        let mut copy = Detached::new(self.0);
        let plan = crate::layers::plan(&mut copy, base);
        copy.store.write_snapshot(out, progress, |w| {
            crate::layers::write(&copy, &plan, base, w)
        })
    }
}

/// The buffer between the store's encoding and a writer: postcard writes a field at a time,
/// and a file is written in pieces this large.
const WRITE_BUFFER: usize = 1 << 20;

/// Room reserved beyond twice the last snapshot's length, so that a tiny store's growth
/// needs no copy either. Small: beyond it the vector grows by doubling, cheap while small.
const RESERVE_EXTRA: usize = 4096;

impl Store {
    /// [`StateMachine::snapshot`], reporting the bytes encoded so far to `progress` as it goes.
    ///
    /// A store that knows how long its last snapshot was encodes in one pass into room for
    /// twice that (a store grows by at most its log between snapshots, and the log by about
    /// the last checkpoint): the pages not written are never touched, so the spare room costs
    /// address space only. Without that length, or if the room cannot be had, a size pass
    /// first makes the allocation exact. At a million keys the one pass spent about 40% less
    /// user CPU than the two (`cargo run --release -p synod-kv --example snapshot_cost`).
    fn snapshot_with(&self, progress: &mut dyn FnMut(usize)) -> Vec<u8> {
        self.encode_with(self, progress)
    }

    /// [`Store::snapshot_with`] with `body` (this store, or a [`Detached`] copy of it, which
    /// encodes the same) in place of the store's own serialized fields.
    fn encode_with(&self, body: &impl Serialize, progress: &mut dyn FnMut(usize)) -> Vec<u8> {
        let last = self.encoded_len.get();
        let mut bytes = if last > 0 {
            let room = last.saturating_mul(2).saturating_add(RESERVE_EXTRA);
            synod_core::encode::to_vec_reserved_with(body, room, progress)
        } else {
            synod_core::encode::to_vec_exact_with(body, progress)
        }
        .expect("the store serializes");
        self.append_trailer(&mut bytes);
        self.encoded_len.set(bytes.len());
        bytes
    }

    /// [`Store::encode_with`]'s bytes, written to `out` as they are made: at a million keys
    /// the encoding held whole was a few hundred megabytes of fresh memory, zeroed by the
    /// kernel page by page, and then copied once more into the checkpoint file.
    fn encode_into(
        &self,
        body: &impl Serialize,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<u64> {
        self.write_snapshot(out, progress, |w| self.write_whole(body, w))
    }

    /// Writes what `write` makes of a snapshot of this store to `out`, through a buffer of
    /// [`WRITE_BUFFER`], reporting the bytes so far to `progress`; returns their length and
    /// keeps it as the next encoding's hint.
    fn write_snapshot(
        &self,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            synod_core::encode::ProgressWrite::new(out, progress),
        );
        write(&mut w)?;
        w.flush()?;
        let len = w.get_ref().written();
        self.encoded_len.set(len as usize);
        Ok(len)
    }

    /// The store's whole snapshot bytes to `out`: `body` (this store, or a [`Detached`] copy of
    /// it) and then the trailer.
    pub(crate) fn write_whole(
        &self,
        body: &impl Serialize,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        postcard::to_io(body, &mut *out).map_err(std::io::Error::other)?;
        let mut trailer = Vec::new();
        self.append_trailer(&mut trailer);
        out.write_all(&trailer)
    }

    /// Reads what [`Store::write_whole`] wrote, before a restore's checks and index.
    pub(crate) fn read_whole(bytes: &[u8]) -> Result<Store, String> {
        let (mut store, rest): (Store, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| format!("store snapshot: {e}"))?;
        store.restore_trailer(rest)?;
        Ok(store)
    }

    /// Applies `cmd` as `user`, after checking the user may.
    fn apply_as(&mut self, user: Option<&str>, cmd: &KvCommand) -> Result<KvResult, KvError> {
        if let KvCommand::As { user: who, cmd } = cmd {
            if user.is_some() {
                return Err(KvError::InvalidAuthMgmt);
            }
            return self.apply_as(Some(who), cmd);
        }
        self.auth().check_command(user, cmd, self)?;
        self.check_space(cmd)?;
        match cmd {
            KvCommand::Range(r) => self.range(r).map(KvResult::Range),
            KvCommand::Put(p) => self.put(p).map(KvResult::Put),
            KvCommand::DeleteRange(d) => self.delete_range(d).map(KvResult::DeleteRange),
            KvCommand::Txn(t) => self.txn(t).map(KvResult::Txn),
            KvCommand::Compact(c) => self.compact(c).map(|()| KvResult::Compacted),
            KvCommand::LeaseGrant { id, ttl } => self
                .lease_grant(*id, *ttl)
                .map(|()| KvResult::LeaseGranted { id: *id, ttl: *ttl }),
            KvCommand::LeaseRevoke { id } => {
                self.lease_revoke(*id).map(|()| KvResult::LeaseRevoked)
            }
            KvCommand::LeaseKeepAlive { id } => self
                .lease_keep_alive(*id)
                .map(|ttl| KvResult::LeaseKeptAlive { ttl }),
            KvCommand::LeaseQuery { id } => self
                .lease(*id)
                .map(|l| KvResult::LeaseInfo {
                    ttl: l.ttl,
                    keys: l.keys.iter().cloned().collect(),
                })
                .ok_or(KvError::LeaseNotFound),
            KvCommand::LeaseList => Ok(KvResult::Leases(self.leases().map(|l| l.id).collect())),
            KvCommand::LeaseExpire { id, refreshes } => self
                .lease_expire(*id, *refreshes)
                .map(KvResult::LeaseExpiry),
            KvCommand::Auth(a) => self.auth_apply(a).map(|()| KvResult::AuthChanged),
            KvCommand::Alarm(a) => Ok(KvResult::Alarms(self.alarm_apply(a))),
            KvCommand::As { .. } => unreachable!("unwrapped above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::multi::Command;

    /// A log holds every command until the next snapshot, in batches of commands laid out
    /// inline: at a million puts a node's log held that many. A variant larger than a put
    /// widens them all.
    #[test]
    fn a_logged_command_is_no_wider_than_a_put_needs() {
        let put = std::mem::size_of::<PutRequest>();
        assert!(
            std::mem::size_of::<KvCommand>() <= put + 8,
            "KvCommand {} bytes, PutRequest {put}",
            std::mem::size_of::<KvCommand>()
        );
        assert!(std::mem::size_of::<Command<KvCommand>>() <= put + 24);
    }
}
