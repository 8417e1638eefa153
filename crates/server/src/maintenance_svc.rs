//! The etcd Maintenance service: Status, Alarm, Defragment, HashKV, Snapshot, MoveLeader.
//!
//! As in etcd (3.6 for MoveLeader), Snapshot, Defragment, HashKV and MoveLeader are root's once auth is on (checked against the
//! auth state this node published), and Alarm is checked where it is applied, in the log.

use crate::backup;
use crate::convert::kv_error;
use crate::grpc::{unexpected, Api};
use crate::node::MoveLeaderError;
use crate::proto::etcdserverpb as pb;
use futures::Stream;
use pb::maintenance_server::Maintenance;
use std::pin::Pin;
use synod_core::multi::TransferError;
use synod_kv::{Alarm, AlarmCommand, AlarmKind, KvCommand, KvResult, Store};
use tonic::{Request, Response, Status};

/// Bytes per message of a snapshot stream: well under every client's message limit.
const SNAPSHOT_CHUNK: usize = 64 * 1024;

/// A node that cannot answer now: the client may retry, here or elsewhere.
pub(crate) fn unavailable(e: impl ToString) -> Status {
    Status::unavailable(e.to_string())
}

fn kind_in(t: i32) -> Result<AlarmKind, Status> {
    match pb::AlarmType::try_from(t) {
        Ok(pb::AlarmType::Nospace) => Ok(AlarmKind::NoSpace),
        Ok(pb::AlarmType::Corrupt) => Ok(AlarmKind::Corrupt),
        _ => Err(Status::invalid_argument(format!(
            "etcdserver: no such alarm type {t}; NOSPACE or CORRUPT"
        ))),
    }
}

fn alarm_out(a: &Alarm) -> pb::AlarmMember {
    let alarm = match a.kind {
        AlarmKind::NoSpace => pb::AlarmType::Nospace,
        AlarmKind::Corrupt => pb::AlarmType::Corrupt,
    };
    pb::AlarmMember {
        member_id: a.member,
        alarm: alarm as i32,
    }
}

impl Api {
    /// Refuses `req` unless its user is root, once auth is on.
    pub(crate) fn check_admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let user = self.user_of(req)?;
        self.auth
            .state()
            .check_admin(user.as_deref())
            .map_err(kv_error)
    }

    /// A copy of the store as this node applied it, and the work `f` does on it off the
    /// runtime's threads (hashing or encoding a large store takes a while).
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.node.store_copy().await.map_err(unavailable)?;
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| Status::internal(format!("the store's copy could not be read: {e}")))
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for Api {
    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let user = self.user_of(&req)?;
        let r = req.into_inner();
        let cmd = match pb::alarm_request::AlarmAction::try_from(r.action) {
            Ok(pb::alarm_request::AlarmAction::Get) => AlarmCommand::Get,
            Ok(pb::alarm_request::AlarmAction::Activate) => AlarmCommand::Activate(Alarm {
                member: r.member_id,
                kind: kind_in(r.alarm)?,
            }),
            Ok(pb::alarm_request::AlarmAction::Deactivate) => AlarmCommand::Deactivate {
                member: r.member_id,
                kind: kind_in(r.alarm)?,
            },
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "etcdserver: no such alarm action {}",
                    r.action
                )))
            }
        };
        match self.order(user, KvCommand::Alarm(cmd)).await? {
            (KvResult::Alarms(alarms), header) => Ok(Response::new(pb::AlarmResponse {
                header: Some(header),
                alarms: alarms.iter().map(alarm_out).collect(),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.node.status().await.map_err(unavailable)?;
        let errors = s
            .alarms
            .iter()
            .map(|a| {
                let name = pb::AlarmType::try_from(alarm_out(a).alarm)
                    .map_or("UNKNOWN", |t| t.as_str_name());
                format!("memberID:{} alarm:{name} ", a.member)
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.header(s.revision)),
            version: concat!("3.5.0-synod-", env!("CARGO_PKG_VERSION")).to_string(),
            db_size: s.log_bytes as i64,
            leader: s.leader.unwrap_or(0),
            raft_index: s.commit_index,
            raft_term: s.term,
            raft_applied_index: s.applied_index,
            errors,
            db_size_in_use: s.log_bytes as i64,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let _t = self.timer("defragment");
        self.check_admin(&req)?;
        self.node.defragment().await.map_err(unavailable)?;
        let s = self.node.status().await.map_err(unavailable)?;
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(self.header(s.revision)),
        }))
    }

    /// Hands leadership to `target_id` (etcdctl's `move-leader`, which asks the leader) and
    /// answers once the target leads, as etcd does.
    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let _t = self.timer("move_leader");
        self.check_admin(&req)?;
        let target = req.get_ref().target_id;
        self.node.move_leader(target).await.map_err(|e| match e {
            MoveLeaderError::Refused(TransferError::NotLeader { .. }) => {
                Status::failed_precondition("etcdserver: not leader")
            }
            MoveLeaderError::Refused(TransferError::NotAMember(_)) => {
                Status::failed_precondition("etcdserver: bad leader transferee")
            }
            MoveLeaderError::Unsupported => Status::unimplemented(e.to_string()),
            MoveLeaderError::Stopped => unavailable(e),
        })?;
        // The old leader gives up after two election timeouts at most; the successor then
        // needs one election. Past three, the transfer did not happen.
        let ticks = u32::try_from(self.cfg.election_ticks.1.saturating_mul(3)).unwrap_or(u32::MAX);
        let deadline = tokio::time::Instant::now() + self.cfg.tick.saturating_mul(ticks);
        loop {
            let s = self.node.status().await.map_err(unavailable)?;
            if s.leader == Some(target) {
                return Ok(Response::new(pb::MoveLeaderResponse {
                    header: Some(self.header(s.revision)),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                // etcd answers this one with code Unknown; DeadlineExceeded would read to
                // clients as their own deadline running out.
                return Err(Status::unknown(
                    "etcdserver: request timed out, leader transfer took too long",
                ));
            }
            tokio::time::sleep(self.cfg.tick).await;
        }
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let _t = self.timer("hash_kv");
        self.check_admin(&req)?;
        let revision = req.into_inner().revision;
        let (hash, compact_revision, at) = self
            .with_store(move |s| s.hash_kv(revision))
            .await?
            .map_err(kv_error)?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.header(at)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let _t = self.timer("snapshot");
        self.check_admin(&req)?;
        let (bytes, revision) = self
            .with_store(|s| (backup::encode(&s), s.revision()))
            .await?;
        tracing::info!(
            node = self.cfg.id,
            revision,
            bytes = bytes.len(),
            "sending a backup"
        );
        let header = self.header(revision);
        let total = bytes.len();
        let chunks: Vec<Result<pb::SnapshotResponse, Status>> = bytes
            .chunks(SNAPSHOT_CHUNK)
            .scan(0usize, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(pb::SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}
