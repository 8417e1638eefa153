//! The etcd v3 Cluster service: the member list as the replicated membership has it, and the
//! changes an operator makes through the log (docs/protocol.md, Reconfiguration): adding a
//! member (a voter, or a learner to promote once it caught up), taking one out, promoting a
//! learner, and moving a member's peer address. An added member is started with
//! `--initial-cluster-state existing` and joins from a peer's snapshot.

use crate::config::url_addr;
use crate::grpc::Api;
use crate::maintenance_svc::unavailable;
use crate::node::MemberChangeError;
use crate::proto::etcdserverpb as pb;
use pb::cluster_server::Cluster;
use synod_core::multi::{ChangeOutcome, Configuration, MemberInfo, MemberOp, RejectReason, Role};
use synod_core::NodeId;
use tonic::{Request, Response, Status};

impl Api {
    /// Member `id` as etcd shows it: its replicated name and addresses, or, for the members a
    /// cluster started with, those of this server's configuration.
    fn member_out(&self, id: NodeId, learner: bool, info: &MemberInfo) -> pb::Member {
        let started = self.cfg.members.iter().find(|m| m.id == id);
        let or_started = |urls: &[String], from: Option<String>| -> Vec<String> {
            if urls.is_empty() {
                from.into_iter().collect()
            } else {
                urls.to_vec()
            }
        };
        pb::Member {
            id,
            name: match info.name.is_empty() {
                true => format!("node{id}"),
                false => info.name.clone(),
            },
            peer_ur_ls: or_started(
                &info.peer_urls,
                started.map(|m| format!("http://{}", m.peer_addr)),
            ),
            client_ur_ls: or_started(
                &info.client_urls,
                started.and_then(|m| m.client_addr.map(|a| format!("http://{a}"))),
            ),
            is_learner: learner,
        }
    }

    /// The latest configuration this node applied, or the one it started with if its
    /// protocol keeps that one.
    async fn members_now(&self) -> Result<Vec<pb::Member>, Status> {
        let latest = self.node.members().await.map_err(unavailable)?;
        Ok(match latest {
            Some(c) => self.members_of(&c),
            None => (self.cfg.members.iter())
                .map(|m| self.member_out(m.id, false, &MemberInfo::default()))
                .collect(),
        })
    }

    fn members_of(&self, c: &Configuration) -> Vec<pb::Member> {
        c.iter()
            .map(|(id, role, info)| self.member_out(id, role == Role::Learner, info))
            .collect()
    }

    /// Orders `ops` through the log; answers with the members once applied, and the ids the
    /// log gave to members added without one.
    async fn change(
        &self,
        ops: Vec<MemberOp>,
    ) -> Result<(pb::ResponseHeader, Vec<pb::Member>, Vec<NodeId>), Status> {
        let outcome = self
            .node
            .change_membership(ops)
            .await
            .map_err(|e| match e {
                MemberChangeError::Unsupported => Status::unimplemented(e.to_string()),
                MemberChangeError::Failed(e) => unavailable(e),
            })?;
        let assigned = match outcome {
            ChangeOutcome::Rejected(reason) => return Err(refused(reason)),
            ChangeOutcome::Applied { assigned, .. } => assigned,
        };
        let members = self.members_now().await?;
        Ok((self.header(0), members, assigned))
    }

    /// Checks peer URLs an operator gives for a member: each an `http(s)://IP:PORT`, none
    /// used by another member already (etcd's "Peer URLs already exists").
    async fn check_peer_urls(&self, urls: &[String], member: Option<NodeId>) -> Result<(), Status> {
        if urls.is_empty() {
            return Err(Status::invalid_argument(
                "etcdserver: a member needs at least one peer URL",
            ));
        }
        for u in urls {
            url_addr(u).map_err(|e| Status::invalid_argument(format!("etcdserver: {e}")))?;
        }
        let taken = self.members_now().await?.into_iter().any(|m| {
            Some(m.id) != member && m.peer_ur_ls.iter().any(|theirs| urls.contains(theirs))
        });
        if taken {
            return Err(Status::failed_precondition(
                "etcdserver: Peer URLs already exists",
            ));
        }
        Ok(())
    }
}

/// etcd's errors for the refusals it shares with Synod.
fn refused(reason: RejectReason) -> Status {
    match reason {
        RejectReason::UnknownMember(_) => Status::not_found("etcdserver: member not found"),
        // Only MemberPromote asks for a role.
        RejectReason::RoleUnchanged {
            role: Role::Voter, ..
        } => Status::failed_precondition("etcdserver: can only promote a learner member"),
        // etcd's words exactly: client libraries match them.
        RejectReason::LearnerNotReady { .. } => Status::failed_precondition(
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        RejectReason::Quorum(_) => Status::failed_precondition(format!(
            "etcdserver: re-configuration failed due to not enough started members ({reason})"
        )),
        // Another change was applied first: asking again sees it.
        RejectReason::StaleEpoch { .. } => Status::aborted(format!("etcdserver: {reason}")),
        _ => Status::failed_precondition(format!("etcdserver: {reason}")),
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    /// Adds a member under a new id, above every id ever used. The change is safe at once (a
    /// Paxos acceptor votes without history), but until the new node is up a voter added
    /// this way is one voter fewer to spare: add a learner, and promote it once caught up.
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let _t = self.timer("member_add");
        self.check_admin(&req)?;
        let req = req.into_inner();
        self.check_peer_urls(&req.peer_ur_ls, None).await?;
        let role = if req.is_learner {
            Role::Learner
        } else {
            Role::Voter
        };
        let info = MemberInfo {
            name: String::new(),
            peer_urls: req.peer_ur_ls,
            client_urls: Vec::new(),
        };
        let op = MemberOp::Add {
            id: None,
            role,
            info: info.clone(),
        };
        let (header, members, assigned) = self.change(vec![op]).await?;
        let Some(&id) = assigned.first() else {
            return Err(Status::internal("the log assigned the new member no id"));
        };
        let member = members
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .unwrap_or_else(|| self.member_out(id, req.is_learner, &info));
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(header),
            member: Some(member),
            members,
        }))
    }

    /// Takes a member out for good: it stops voting and serving once the change is applied
    /// (its clients are told it was removed), and its id is never used again.
    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let _t = self.timer("member_remove");
        self.check_admin(&req)?;
        let id = req.into_inner().id;
        let (header, members, _) = self.change(vec![MemberOp::Remove(id)]).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(header),
            members,
        }))
    }

    /// Moves a member's peer address; its peers connect to the new one from their next
    /// attempt. Its client addresses stay as they were.
    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let _t = self.timer("member_update");
        self.check_admin(&req)?;
        let req = req.into_inner();
        self.check_peer_urls(&req.peer_ur_ls, Some(req.id)).await?;
        let now = self.members_now().await?;
        let Some(current) = now.iter().find(|m| m.id == req.id) else {
            return Err(Status::not_found("etcdserver: member not found"));
        };
        let op = MemberOp::Update {
            id: req.id,
            peer_urls: req.peer_ur_ls,
            client_urls: current.client_ur_ls.clone(),
        };
        let (header, members, _) = self.change(vec![op]).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let members = self.members_now().await?;
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.header(0)),
            members,
        }))
    }

    /// Makes a learner a voter, once the leader has heard in its last heartbeat rounds that
    /// the learner is within a catch-up batch of the commit point; otherwise refused as etcd
    /// refuses it. The promotion would be safe either way (a Paxos acceptor votes without
    /// history), but a voter still catching up is one voter fewer to spare.
    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let _t = self.timer("member_promote");
        self.check_admin(&req)?;
        let id = req.into_inner().id;
        let op = MemberOp::SetRole {
            id,
            role: Role::Voter,
        };
        let (header, members, _) = self.change(vec![op]).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(header),
            members,
        }))
    }
}
