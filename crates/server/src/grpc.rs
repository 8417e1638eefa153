//! The etcd v3 gRPC service KV. Cluster, Watch, Lease, Auth and Maintenance live in
//! `cluster_svc`, `watch_svc`, `lease_svc`, `auth_svc` and `maintenance_svc`.

use crate::auth::{Authenticator, ReadAccess};
use crate::config::ServerConfig;
use crate::convert::*;
use crate::metrics::Metrics;
use crate::node::{NodeHandle, ProposeError};
use crate::proto::etcdserverpb as pb;
use pb::kv_server::Kv;
use std::sync::Arc;
use synod_kv::{KvCommand, KvOutput, KvResult, RangeRequest, RangeResponse};
use tonic::{Request, Response, Status};

/// A fixed cluster id: members of one Synod cluster agree on it because they share the config.
fn cluster_id(cfg: &ServerConfig) -> u64 {
    cfg.members.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, m| {
        (h ^ m.id).wrapping_mul(0x100_0000_01b3)
    })
}

/// Shared state of the gRPC services.
#[derive(Clone)]
pub struct Api {
    pub(crate) node: NodeHandle,
    pub(crate) cfg: Arc<ServerConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) auth: Authenticator,
}

impl Api {
    /// Services answering for `node`, with `auth` telling who sends each request.
    pub fn new(
        node: NodeHandle,
        cfg: Arc<ServerConfig>,
        metrics: Metrics,
        auth: Authenticator,
    ) -> Self {
        Api {
            node,
            cfg,
            metrics,
            auth,
        }
    }

    /// The user `req` runs as (see [`Authenticator::user`]).
    pub(crate) fn user_of<T>(&self, req: &Request<T>) -> Result<Option<String>, Status> {
        // A certificate names a user only where the CA checked it.
        let verified = self
            .cfg
            .client_tls
            .as_ref()
            .is_some_and(|t| t.client_cert_auth);
        let cert_user = || {
            let certs = req.peer_certs().filter(|_| verified)?;
            crate::auth::common_name(certs.first()?)
        };
        self.auth.user(req.metadata(), cert_user)
    }

    /// Refuses a read that its user may not make, by the auth state this node has published.
    /// For reads served without a log slot; everything ordered through the log is checked
    /// when applied.
    pub(crate) fn check_access(&self, access: &ReadAccess) -> Result<(), Status> {
        access.check(&self.auth.state()).map_err(kv_error)
    }

    pub(crate) fn timer(&self, method: &str) -> prometheus::HistogramTimer {
        self.metrics
            .request_seconds
            .with_label_values(&[method])
            .start_timer()
    }

    /// A response header, with the raft term this node published last.
    pub(crate) fn header(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: cluster_id(&self.cfg),
            member_id: self.cfg.id,
            revision,
            raft_term: self.node.term(),
        }
    }

    /// Orders `cmd` through the log as `user`, and returns its result.
    pub(crate) async fn order(
        &self,
        user: Option<String>,
        cmd: KvCommand,
    ) -> Result<(KvResult, pb::ResponseHeader), Status> {
        let KvOutput { revision, result } = self
            .node
            .propose(cmd.run_as(user))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let result = result.map_err(kv_error)?;
        Ok((result, self.header(revision)))
    }
}

impl Api {
    /// Serves a range request as `user`: locally if it asks for a serializable read, else
    /// linearizably, without a log slot where a leader is known and through the log otherwise.
    pub(crate) async fn read(
        &self,
        user: Option<String>,
        req: RangeRequest,
    ) -> Result<(RangeResponse, pb::ResponseHeader), Status> {
        let access = ReadAccess {
            user: user.clone(),
            key: req.key.clone(),
            range_end: req.range_end.clone(),
        };
        // Refused early where the handler's view already says so; and checked again once the
        // read is served (below), because the node publishes its auth state before it answers
        // a read, so the view then is at least as new as the state the data came from, which
        // may have turned auth on or taken the permission away since.
        self.check_access(&access)?;
        if req.serializable || self.cfg.unsafe_local_reads {
            let (rev, r) = self
                .node
                .read_local(req)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            self.check_access(&access)?;
            return Ok((r.map_err(kv_error)?, self.header(rev)));
        }
        // A linearizable read needs no log slot: the leader confirms it still leads and names
        // the index to wait for. Without a known leader, order it through the log instead.
        match self.node.read_index(req.clone()).await {
            Ok((rev, r)) => {
                self.check_access(&access)?;
                return Ok((r.map_err(kv_error)?, self.header(rev)));
            }
            Err(ProposeError::NotLeader) => {}
            Err(e) => return Err(Status::unavailable(e.to_string())),
        }
        match self.order(user, KvCommand::Range(Box::new(req))).await? {
            (KvResult::Range(r), h) => Ok((r, h)),
            (other, _) => Err(unexpected(other)),
        }
    }
}

pub(crate) fn unexpected(r: KvResult) -> Status {
    Status::internal(format!(
        "the store answered with an unexpected result: {r:?}"
    ))
}

#[tonic::async_trait]
impl Kv for Api {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let _t = self.timer("range");
        let user = self.user_of(&req)?;
        let (r, header) = self.read(user, range_in(req.into_inner())).await?;
        Ok(Response::new(range_out(r, header)))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let _t = self.timer("put");
        let user = self.user_of(&req)?;
        match self
            .order(user, KvCommand::Put(put_in(req.into_inner())))
            .await?
        {
            (KvResult::Put(p), h) => Ok(Response::new(put_out(p, h))),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let _t = self.timer("delete_range");
        let user = self.user_of(&req)?;
        match self
            .order(user, KvCommand::DeleteRange(delete_in(req.into_inner())))
            .await?
        {
            (KvResult::DeleteRange(d), h) => Ok(Response::new(delete_out(d, h))),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let _t = self.timer("txn");
        let user = self.user_of(&req)?;
        let t = txn_in(req.into_inner())?;
        match self.order(user, KvCommand::Txn(t)).await? {
            (KvResult::Txn(t), h) => Ok(Response::new(txn_out(t, h))),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let _t = self.timer("compact");
        let user = self.user_of(&req)?;
        let revision = req.into_inner().revision;
        match self
            .order(
                user,
                KvCommand::Compact(synod_kv::CompactionRequest { revision }),
            )
            .await?
        {
            (KvResult::Compacted, h) => {
                Ok(Response::new(pb::CompactionResponse { header: Some(h) }))
            }
            (other, _) => Err(unexpected(other)),
        }
    }
}
