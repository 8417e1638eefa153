//! etcd's Lock service (`v3lockpb.Lock`), so client libraries' `lock()` works against Synod.

use crate::grpc::{unexpected, Api};
use crate::proto::v3lockpb as pb;
use crate::recipes::waiter_key;
use pb::lock_server::Lock;
use synod_kv::{DeleteRangeRequest, KvCommand, KvResult};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl Lock for Api {
    async fn lock(
        &self,
        req: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        let _t = self.timer("lock");
        let user = self.user_of(&req)?;
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(Status::invalid_argument("etcdserver: lock name is empty"));
        }
        let lease = self.session_lease(&user, r.lease).await?;
        let key = waiter_key(&r.name, lease);
        let turn = self
            .take_turn(user, r.name, key.clone(), Vec::new(), lease)
            .await?;
        Ok(Response::new(pb::LockResponse {
            header: Some(turn.header),
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let _t = self.timer("unlock");
        let user = self.user_of(&req)?;
        let del = KvCommand::DeleteRange(DeleteRangeRequest {
            key: req.into_inner().key,
            ..Default::default()
        });
        match self.order(user, del).await? {
            (KvResult::DeleteRange(_), header) => Ok(Response::new(pb::UnlockResponse {
                header: Some(header),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }
}
