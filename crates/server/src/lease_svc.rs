//! The Lease service. Grants, revokes and keep-alives are ordered through the log; a lease's
//! remaining time is what the serving node's lease clock says.

use crate::grpc::{unexpected, Api};
use crate::proto::etcdserverpb as pb;
use futures::Stream;
use std::pin::Pin;
use synod_kv::{KvCommand, KvError, KvResult, MAX_LEASE_TTL};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

fn unavailable(e: crate::node::ProposeError) -> Status {
    Status::unavailable(e.to_string())
}

impl Api {
    /// One keep-alive through the log: the lease's TTL, or 0 when it is gone.
    async fn keep_alive_once(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
        let out = self
            .node
            .propose(KvCommand::LeaseKeepAlive { id })
            .await
            .map_err(unavailable)?;
        let ttl = match out.result {
            Ok(KvResult::LeaseKeptAlive { ttl }) => ttl,
            Err(KvError::LeaseNotFound) => 0,
            Err(e) => return Err(crate::convert::kv_error(e)),
            Ok(other) => return Err(unexpected(other)),
        };
        Ok(pb::LeaseKeepAliveResponse {
            header: Some(self.header(out.revision)),
            id,
            ttl,
        })
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::lease_server::Lease for Api {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let _t = self.timer("lease_grant");
        let user = self.user_of(&req)?;
        let req = req.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(crate::convert::kv_error(KvError::LeaseTtlTooLarge));
        }
        if req.id < 0 {
            return Err(Status::invalid_argument(
                "etcdserver: lease ID must be positive",
            ));
        }
        let ttl = req.ttl.max(self.cfg.min_lease_ttl());
        match self
            .order(user, KvCommand::LeaseGrant { id: req.id, ttl })
            .await?
        {
            (KvResult::LeaseGranted { id, ttl }, header) => {
                Ok(Response::new(pb::LeaseGrantResponse {
                    header: Some(header),
                    id,
                    ttl,
                    error: String::new(),
                }))
            }
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let _t = self.timer("lease_revoke");
        let user = self.user_of(&req)?;
        let id = req.into_inner().id;
        match self.order(user, KvCommand::LeaseRevoke { id }).await? {
            (KvResult::LeaseRevoked, header) => Ok(Response::new(pb::LeaseRevokeResponse {
                header: Some(header),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let reply = api.keep_alive_once(req.id).await;
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        let out = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let _t = self.timer("lease_time_to_live");
        let user = self.user_of(&req)?;
        let req = req.into_inner();
        // Ordered through the log, so it sees every grant, put and revoke acknowledged before;
        // the time left is this node's lease clock.
        let out = self
            .node
            .propose(KvCommand::LeaseQuery { id: req.id }.run_as(user))
            .await
            .map_err(unavailable)?;
        let header = Some(self.header(out.revision));
        let resp = match out.result {
            Ok(KvResult::LeaseInfo { ttl, keys }) => {
                let remaining = self
                    .node
                    .lease_remaining(req.id)
                    .await
                    .map_err(unavailable)?
                    .unwrap_or(ttl);
                pb::LeaseTimeToLiveResponse {
                    header,
                    id: req.id,
                    ttl: remaining,
                    granted_ttl: ttl,
                    keys: if req.keys { keys } else { Vec::new() },
                }
            }
            // etcd answers an unknown lease with TTL -1 rather than an error.
            Err(KvError::LeaseNotFound) => pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
            Err(e) => return Err(crate::convert::kv_error(e)),
            Ok(other) => return Err(unexpected(other)),
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let _t = self.timer("lease_leases");
        let user = self.user_of(&req)?;
        match self.order(user, KvCommand::LeaseList).await? {
            (KvResult::Leases(ids), header) => Ok(Response::new(pb::LeaseLeasesResponse {
                header: Some(header),
                leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }
}
