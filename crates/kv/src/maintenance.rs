//! The operator's half of the store: alarms, and a hash of the history for comparing members.
//!
//! Alarms are replicated state, changed only through the log, so every member refuses the same
//! writes: while any member's NOSPACE alarm is raised, puts, transactions that put and lease
//! grants are refused (etcd's rule), and deletes (in transactions too), compactions and reads
//! still run, so an operator can make room and disarm it.

use crate::error::KvError;
use crate::machine::KvCommand;
use crate::store::Store;
use crate::types::{RequestOp, TxnRequest};
use serde::{Deserialize, Serialize};

/// What an alarm is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    /// A member's data outgrew its quota: writes are refused until an operator disarms it.
    NoSpace,
    /// A member's data was found corrupt (raised by operators; Synod does not raise it itself).
    Corrupt,
}

/// One raised alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alarm {
    /// The member it is raised for.
    pub member: u64,
    /// What it is about.
    pub kind: AlarmKind,
}

/// A change to, or a question about, the alarms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmCommand {
    /// List every raised alarm.
    Get,
    /// An operator raises an alarm (root's, once auth is on).
    Activate(Alarm),
    /// An operator disarms `kind` for `member`, or for every member when `member` is 0.
    Deactivate {
        /// The member (0: all).
        member: u64,
        /// What to disarm.
        kind: AlarmKind,
    },
    /// A server raises an alarm for itself, having found its own data over quota. Needs no
    /// user: servers issue it, never a client's request.
    Raise(Alarm),
}

impl Store {
    /// Every raised alarm, by member.
    pub fn alarms(&self) -> impl Iterator<Item = &Alarm> + '_ {
        self.alarms.iter()
    }

    /// True while some member's NOSPACE alarm is raised.
    pub fn out_of_space(&self) -> bool {
        self.alarms.iter().any(|a| a.kind == AlarmKind::NoSpace)
    }

    /// Applies an alarm command. Returns the alarms it concerns: all of them for `Get`, the
    /// one raised if it was not raised already, the ones disarmed.
    pub(crate) fn alarm_apply(&mut self, cmd: &AlarmCommand) -> Vec<Alarm> {
        match cmd {
            AlarmCommand::Get => self.alarms.iter().copied().collect(),
            AlarmCommand::Activate(a) | AlarmCommand::Raise(a) => {
                if self.alarms.insert(*a) {
                    vec![*a]
                } else {
                    Vec::new()
                }
            }
            AlarmCommand::Deactivate { member, kind } => {
                let gone: Vec<Alarm> = self
                    .alarms
                    .iter()
                    .filter(|a| a.kind == *kind && (*member == 0 || a.member == *member))
                    .copied()
                    .collect();
                for a in &gone {
                    self.alarms.remove(a);
                }
                gone
            }
        }
    }

    /// Refuses `cmd` if it would grow the store while it is out of space.
    pub(crate) fn check_space(&self, cmd: &KvCommand) -> Result<(), KvError> {
        if self.out_of_space() && cmd.grows() {
            return Err(KvError::NoSpace);
        }
        Ok(())
    }

    /// A hash of every change kept at or below `revision` (0: the current one), with the
    /// compacted revision and the revision hashed. Members that applied the same log and the
    /// same compactions answer the same hash for the same revision, whatever else they applied
    /// since. A compaction trims history below it, so hashes compare only between answers with
    /// the same compacted revision; asking below it fails with [`KvError::Compacted`].
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64), KvError> {
        let rev = if revision <= 0 {
            self.revision
        } else {
            revision
        };
        if rev > self.revision {
            return Err(KvError::FutureRevision);
        }
        if rev < self.compacted {
            return Err(KvError::Compacted);
        }
        let mut h = 0u32;
        let mut feed = |bytes: &[u8]| h = crc32c::crc32c_append(h, bytes);
        for (key, history) in self.keys.iter() {
            for r in history.iter().take_while(|r| r.main <= rev) {
                feed(&(key.len() as u64).to_le_bytes());
                feed(key);
                feed(&r.main.to_le_bytes());
                feed(&r.sub.to_le_bytes());
                match &r.kv {
                    Some(kv) => {
                        feed(&[1]);
                        feed(&kv.create_revision.to_le_bytes());
                        feed(&kv.version.to_le_bytes());
                        feed(&kv.lease.to_le_bytes());
                        feed(&(kv.value.len() as u64).to_le_bytes());
                        feed(&kv.value);
                    }
                    None => feed(&[0]),
                }
            }
        }
        Ok((h, self.compacted, rev))
    }
}

impl KvCommand {
    /// Whether the command may grow the store: etcd refuses these while NOSPACE is raised, and
    /// a member over its quota refuses them before proposing.
    pub fn grows(&self) -> bool {
        match self {
            KvCommand::Put(_) | KvCommand::LeaseGrant { .. } => true,
            KvCommand::Txn(t) => puts(t),
            KvCommand::As { cmd, .. } => cmd.grows(),
            _ => false,
        }
    }
}

/// Whether either branch puts anything: etcd charges a transaction's puts against the quota,
/// nothing else, so deleting in a transaction (a conditional delete, an election's resign)
/// still frees room under NOSPACE.
fn puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match op {
        RequestOp::Put(_) => true,
        RequestOp::Txn(inner) => puts(inner),
        RequestOp::Range(_) | RequestOp::DeleteRange(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::KvResult;
    use crate::types::*;
    use synod_core::multi::StateMachine;

    fn put(k: &str, v: &str) -> KvCommand {
        KvCommand::Put(PutRequest {
            key: k.into(),
            value: v.to_string().into(),
            ..Default::default()
        })
    }

    fn no_space(member: u64) -> Alarm {
        Alarm {
            member,
            kind: AlarmKind::NoSpace,
        }
    }

    #[test]
    fn no_space_refuses_what_grows_the_store_until_disarmed() {
        let mut s = Store::new();
        s.apply(&put("a", "1"));
        s.apply(&KvCommand::LeaseGrant { id: 5, ttl: 10 });
        let out = s.apply(&KvCommand::Alarm(AlarmCommand::Raise(no_space(2))));
        assert_eq!(out.result, Ok(KvResult::Alarms(vec![no_space(2)])));
        assert_eq!(s.alarms().copied().collect::<Vec<_>>(), vec![no_space(2)]);
        let txn_put = KvCommand::Txn(TxnRequest {
            success: vec![RequestOp::Txn(TxnRequest {
                success: vec![RequestOp::Put(PutRequest {
                    key: "b".into(),
                    ..Default::default()
                })],
                ..Default::default()
            })],
            ..Default::default()
        });
        let txn_read = KvCommand::Txn(TxnRequest {
            failure: vec![RequestOp::Range(RangeRequest {
                key: "a".into(),
                ..Default::default()
            })],
            ..Default::default()
        });
        let txn_del = KvCommand::Txn(TxnRequest {
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: "zz".into(),
                ..Default::default()
            })],
            ..Default::default()
        });
        let lease = KvCommand::LeaseGrant { id: 6, ttl: 10 };
        for refused in [put("a", "2"), txn_put, lease.clone()] {
            assert_eq!(
                s.apply(&refused).result,
                Err(KvError::NoSpace),
                "{refused:?}"
            );
            let as_user = refused.run_as(Some("alice".into()));
            // What a member checks against its quota before proposing, user and all.
            assert!(as_user.grows(), "{as_user:?}");
            assert_eq!(s.apply(&as_user).result, Err(KvError::NoSpace));
        }
        let rev = s.revision();
        // Reads, deletes, compaction and lease revocation make room and still run.
        assert!(!txn_read.grows() && !txn_read.clone().run_as(Some("bob".into())).grows());
        assert!(s.apply(&txn_read).result.is_ok());
        assert!(!txn_del.grows());
        assert!(s.apply(&txn_del).result.is_ok());
        let del = KvCommand::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        });
        assert!(s.apply(&del).result.is_ok());
        let compact = KvCommand::Compact(CompactionRequest { revision: rev });
        assert!(s.apply(&compact).result.is_ok());
        assert!(s.apply(&KvCommand::LeaseRevoke { id: 5 }).result.is_ok());
        // Another member's disarm leaves member 2's alarm; disarming all clears it.
        let other = KvCommand::Alarm(AlarmCommand::Deactivate {
            member: 3,
            kind: AlarmKind::NoSpace,
        });
        assert_eq!(s.apply(&other).result, Ok(KvResult::Alarms(vec![])));
        assert!(s.out_of_space());
        let all = KvCommand::Alarm(AlarmCommand::Deactivate {
            member: 0,
            kind: AlarmKind::NoSpace,
        });
        assert_eq!(
            s.apply(&all).result,
            Ok(KvResult::Alarms(vec![no_space(2)]))
        );
        assert!(!s.out_of_space());
        assert!(s.apply(&put("a", "3")).result.is_ok());
        assert!(s.apply(&lease).result.is_ok());
    }

    #[test]
    fn raising_twice_reports_once_and_corrupt_does_not_refuse_writes() {
        let mut s = Store::new();
        let corrupt = Alarm {
            member: 1,
            kind: AlarmKind::Corrupt,
        };
        let raise = KvCommand::Alarm(AlarmCommand::Activate(corrupt));
        assert_eq!(s.apply(&raise).result, Ok(KvResult::Alarms(vec![corrupt])));
        assert_eq!(s.apply(&raise).result, Ok(KvResult::Alarms(vec![])));
        assert!(s.apply(&put("a", "1")).result.is_ok());
        s.apply(&KvCommand::Alarm(AlarmCommand::Raise(no_space(3))));
        let get = KvCommand::Alarm(AlarmCommand::Get);
        assert_eq!(
            s.apply(&get).result,
            Ok(KvResult::Alarms(vec![corrupt, no_space(3)]))
        );
    }

    #[test]
    fn alarms_survive_a_snapshot_with_and_without_auth() {
        let mut s = Store::new();
        s.apply(&put("a", "1"));
        let plain = Store::restore(&s.snapshot()).unwrap();
        assert_eq!(plain.alarms().count(), 0);
        s.apply(&KvCommand::Alarm(AlarmCommand::Raise(no_space(2))));
        let back = Store::restore(&s.snapshot()).unwrap();
        assert_eq!(back, s);
        assert!(back.out_of_space());
        s.apply(&KvCommand::Auth(crate::AuthCommand::RoleAdd {
            name: "r".into(),
        }));
        let back = Store::restore(&s.snapshot()).unwrap();
        assert_eq!(back, s);
        assert!(back.out_of_space());
        assert_eq!(back.auth().revision(), s.auth().revision());
    }

    #[test]
    fn the_hash_covers_history_up_to_the_revision_asked() {
        let mut a = Store::new();
        a.apply(&put("k", "1"));
        a.apply(&put("j", "1"));
        let (h2, _, r2) = a.hash_kv(0).unwrap();
        assert_eq!(r2, 3);
        let mut b = a.clone();
        // Later writes do not change the hash at an earlier revision.
        b.apply(&put("k", "2"));
        assert_eq!(b.hash_kv(3).unwrap().0, h2);
        assert_ne!(b.hash_kv(0).unwrap().0, h2);
        // A different value, lease, deletion or key changes it.
        let mut c = Store::new();
        c.apply(&put("k", "1"));
        c.apply(&put("j", "2"));
        assert_ne!(c.hash_kv(0).unwrap().0, h2);
        let mut d = a.clone();
        d.apply(&KvCommand::DeleteRange(DeleteRangeRequest {
            key: "j".into(),
            ..Default::default()
        }));
        let mut e = a.clone();
        e.apply(&put("j", "1"));
        assert_ne!(d.hash_kv(0).unwrap().0, e.hash_kv(0).unwrap().0);
        let mut f = a.clone();
        f.apply(&KvCommand::LeaseGrant { id: 9, ttl: 5 });
        let mut g = f.clone();
        f.apply(&KvCommand::Put(PutRequest {
            key: "j".into(),
            value: "1".into(),
            lease: 9,
            ..Default::default()
        }));
        g.apply(&put("j", "1"));
        assert_ne!(f.hash_kv(0).unwrap().0, g.hash_kv(0).unwrap().0);
        // A snapshot's copy hashes the same; compaction bounds what may be asked.
        let back = Store::restore(&b.snapshot()).unwrap();
        assert_eq!(back.hash_kv(0), b.hash_kv(0));
        assert_eq!(b.hash_kv(99), Err(KvError::FutureRevision));
        b.apply(&KvCommand::Compact(CompactionRequest { revision: 3 }));
        assert_eq!(b.hash_kv(2), Err(KvError::Compacted));
        assert_eq!(b.hash_kv(3).unwrap().1, 3);
    }
}
