//! etcd's Election service (`v3electionpb.Election`), so client libraries' `campaign()`,
//! `proclaim()`, `leader()`, `observe()` and `resign()` work against Synod.

use crate::convert::kv_out;
use crate::grpc::Api;
use crate::proto::v3electionpb as pb;
use crate::recipes::{first_or_last_before, prefix, waiter_key};
use futures::Stream;
use pb::election_server::Election;
use std::pin::Pin;
use synod_kv::{KeyRange, KeyValue};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

fn not_leader() -> Status {
    Status::failed_precondition("election: not leader")
}

fn no_leader() -> Status {
    Status::not_found("election: no leader")
}

fn leader_key(k: Option<pb::LeaderKey>) -> Result<pb::LeaderKey, Status> {
    k.filter(|k| !k.key.is_empty())
        .ok_or_else(|| Status::invalid_argument("election: no leader key given"))
}

impl Api {
    /// The election's leader now: the key under its prefix created first.
    async fn leader_now(
        &self,
        user: &Option<String>,
        name: &[u8],
    ) -> Result<(Option<KeyValue>, crate::proto::etcdserverpb::ResponseHeader), Status> {
        let (r, header) = self
            .read(user.clone(), first_or_last_before(&prefix(name), None))
            .await?;
        Ok((r.kvs.into_iter().next(), header))
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for Api {
    async fn campaign(
        &self,
        req: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let _t = self.timer("campaign");
        let user = self.user_of(&req)?;
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(Status::invalid_argument("election: name is empty"));
        }
        let lease = self.session_lease(&user, r.lease).await?;
        let key = waiter_key(&r.name, lease);
        let turn = self
            .take_turn(user, r.name.clone(), key.clone(), r.value, lease)
            .await?;
        let leader = pb::LeaderKey {
            name: r.name,
            key,
            rev: turn.rev,
            lease,
        };
        Ok(Response::new(pb::CampaignResponse {
            header: Some(turn.header),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        let _t = self.timer("proclaim");
        let user = self.user_of(&req)?;
        let r = req.into_inner();
        let leader = leader_key(r.leader)?;
        let held = self
            .proclaim_as(&user, &leader.key, leader.rev, leader.lease, r.value)
            .await?;
        if !held {
            return Err(not_leader());
        }
        let (_, header) = self.leader_now(&user, &leader.name).await?;
        Ok(Response::new(pb::ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let _t = self.timer("leader");
        let user = self.user_of(&req)?;
        let (kv, header) = self.leader_now(&user, &req.into_inner().name).await?;
        let kv = kv.ok_or_else(no_leader)?;
        Ok(Response::new(pb::LeaderResponse {
            header: Some(header),
            kv: Some(kv_out(kv)),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let user = self.user_of(&req)?;
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            let pfx = prefix(&name);
            let end = KeyRange::prefix_end(&pfx);
            // The leader last sent, by key and the revision of its value.
            let mut sent: Option<(Vec<u8>, i64)> = None;
            loop {
                let (kv, header) = match api.leader_now(&user, &name).await {
                    Ok(got) => got,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let after = header.revision;
                if let Some(kv) = kv {
                    let now = (kv.key.clone(), kv.mod_revision);
                    if sent.as_ref() != Some(&now) {
                        sent = Some(now);
                        let resp = pb::LeaderResponse {
                            header: Some(header),
                            kv: Some(kv_out(kv)),
                        };
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
                // Any change under the prefix may change the leader or its value.
                let changed = tokio::select! {
                    c = api.wait_change(&user, (&pfx, &end), after, false) => c,
                    _ = tx.closed() => return,
                };
                if let Err(e) = changed {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        req: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        let _t = self.timer("resign");
        let user = self.user_of(&req)?;
        let leader = leader_key(req.into_inner().leader)?;
        let header = self
            .delete_if_created(&user, &leader.key, leader.rev)
            .await?;
        Ok(Response::new(pb::ResignResponse {
            header: Some(header),
        }))
    }
}
