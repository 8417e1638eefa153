//! etcd's Lock service (`v3lockpb.Lock`), so client libraries' `lock()` works against Synod.

use crate::grpc::{unexpected, Api};
use crate::proto::v3lockpb as pb;
use crate::recipes::{prefix, waiter_key, Abandon};
use pb::lock_server::Lock;
use synod_kv::{DeleteRangeRequest, KvCommand, KvResult, RangeRequest};
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
        let (rev, _) = self.create_waiter(&user, &key, b"", lease).await?;
        // From here on, a caller that goes away must not leave its key queued.
        let abandon = Abandon::new(self, &user, &key);
        self.wait_turn(&user, &prefix(&r.name), rev).await?;
        // Its lease may have ended while it waited, taking the key with it.
        let mine = RangeRequest {
            key: key.clone(),
            ..Default::default()
        };
        let (got, header) = self.read(user.clone(), mine).await?;
        if got.kvs.first().map(|kv| kv.create_revision) != Some(rev) {
            return Err(Status::failed_precondition(
                "etcdserver: the lock's lease ended while it waited (session expired)",
            ));
        }
        abandon.disarm();
        Ok(Response::new(pb::LockResponse {
            header: Some(header),
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
