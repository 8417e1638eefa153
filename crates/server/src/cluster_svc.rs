//! The etcd v3 Cluster service: the member list as the replicated membership has it, and the
//! changes the served cluster can make through the log (docs/protocol.md, Reconfiguration):
//! taking a member out and promoting a learner. Adding members and changing their addresses
//! wait for members that can join a running cluster; until then they answer Unimplemented
//! saying so.

use crate::grpc::Api;
use crate::maintenance_svc::unavailable;
use crate::node::MemberChangeError;
use crate::proto::etcdserverpb as pb;
use pb::cluster_server::Cluster;
use synod_core::multi::{ChangeOutcome, Configuration, MemberInfo, MemberOp, RejectReason, Role};
use synod_core::NodeId;
use tonic::{Request, Response, Status};

/// Why MemberAdd and MemberUpdate are not served yet.
const NO_JOINING: &str = "synod: adding members and changing their addresses is not served yet \
     (a member's peers are fixed at start); members can be removed and learners promoted";

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

    /// Orders `ops` through the log; answers with the members once applied.
    async fn change(
        &self,
        ops: Vec<MemberOp>,
    ) -> Result<(pb::ResponseHeader, Vec<pb::Member>), Status> {
        let outcome = self
            .node
            .change_membership(ops)
            .await
            .map_err(|e| match e {
                MemberChangeError::Unsupported => Status::unimplemented(e.to_string()),
                MemberChangeError::Failed(e) => unavailable(e),
            })?;
        if let ChangeOutcome::Rejected(reason) = outcome {
            return Err(refused(reason));
        }
        let members = self.members_now().await?;
        Ok((self.header(0), members))
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
    async fn member_add(
        &self,
        _req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(Status::unimplemented(NO_JOINING))
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
        let (header, members) = self.change(vec![MemberOp::Remove(id)]).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_update(
        &self,
        _req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(NO_JOINING))
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
        let (header, members) = self.change(vec![op]).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(header),
            members,
        }))
    }
}
