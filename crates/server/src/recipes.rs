//! What the Lock and Election services share. etcd runs its client-side recipes (a mutex, an
//! election) inside its server for these services; Synod runs the same steps through its own
//! log: each waiter puts a key under the name's prefix, tied to its lease, and the waiter whose
//! key was created first holds the lock or leads. A waiter waits for the key created just
//! before its own to be deleted, then checks again. [`Api::take_turn`] is the whole of it.

use crate::auth::ReadAccess;
use crate::grpc::{unexpected, Api};
use crate::node::WatchInput;
use crate::proto::etcdserverpb as pb;
use crate::watch::{WatchMsg, WatchSpec, STREAM_BUFFER};
use synod_kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KeyValue, KvCommand,
    KvResult, PutRequest, RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// The TTL of a lease granted for a caller that named none, as etcd's sessions grant.
const DEFAULT_SESSION_TTL: i64 = 60;

/// The key a waiter with `lease` puts under `name`: `name/<lease in hex>`, as etcd's recipes.
pub(crate) fn waiter_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend(format!("{lease:x}").into_bytes());
    key
}

/// Every waiter's key starts with this.
pub(crate) fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The key under `prefix` created first (the holder or leader), or, with `before`, the one
/// created last before that revision (the waiter to wait for).
pub(crate) fn first_or_last_before(prefix: &[u8], before: Option<i64>) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: KeyRange::prefix_end(prefix),
        limit: 1,
        sort_target: SortTarget::Create,
        sort_order: if before.is_some() {
            SortOrder::Descend
        } else {
            SortOrder::Ascend
        },
        max_create_revision: before.map_or(0, |r| r - 1),
        ..Default::default()
    }
}

/// Holds `key = create revision` as a transaction's only compare.
fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(rev),
        key: key.to_vec(),
        range_end: Vec::new(),
    }
}

/// A waiter's place, once its turn came.
pub(crate) struct Turn {
    /// The create revision of its key.
    pub(crate) rev: i64,
    /// The revision the turn was confirmed at.
    pub(crate) header: pb::ResponseHeader,
}

impl Api {
    /// `lease`, or a lease granted now for a caller that named none (etcd's sessions do the
    /// same; nobody keeps it alive, so it ends after its TTL).
    pub(crate) async fn session_lease(
        &self,
        user: &Option<String>,
        lease: i64,
    ) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = KvCommand::LeaseGrant {
            id: 0,
            ttl: DEFAULT_SESSION_TTL,
        };
        match self.order(user.clone(), grant).await? {
            (KvResult::LeaseGranted { id, .. }, _) => Ok(id),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Queues a waiter under `name`: puts `key` with `value` under `lease` unless it exists
    /// (then proclaims `value` there if it differs), waits until every key created before it
    /// is gone, and checks that its own key outlived the wait (its lease may have ended).
    ///
    /// All in a task of its own: a caller that goes away, at whatever step, must not leave a
    /// key behind that would block every later waiter. The task deletes the key it created
    /// (only that: a key that existed already is another call's) once nobody waits for it.
    pub(crate) async fn take_turn(
        &self,
        user: Option<String>,
        name: Vec<u8>,
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Turn, Status> {
        let (mut tx, rx) = oneshot::channel();
        let api = self.clone();
        tokio::spawn(async move {
            let (rev, existed) = match api.create_waiter(&user, &key, &value, lease).await {
                Ok(created) => created,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let steps = async {
                if existed.as_ref().is_some_and(|kv| kv.value != value) {
                    api.proclaim_as(&user, &key, rev, lease, value.clone())
                        .await?;
                }
                api.wait_turn(&user, &prefix(&name), rev).await?;
                let mine = RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                };
                let (got, header) = api.read(user.clone(), mine).await?;
                if got.kvs.first().map(|kv| kv.create_revision) != Some(rev) {
                    return Err(Status::failed_precondition(
                        "etcdserver: the waiter's lease ended while it waited (session expired)",
                    ));
                }
                Ok(Turn { rev, header })
            };
            let answered = tokio::select! {
                done = steps => tx.send(done).is_ok(),
                _ = tx.closed() => false,
            };
            if !answered && existed.is_none() {
                if let Err(e) = api.delete_if_created(&user, &key, rev).await {
                    tracing::warn!(error = %e, "could not delete an abandoned waiter's key");
                }
            }
        });
        rx.await
            .map_err(|_| Status::unavailable("the node stopped while the request waited"))?
    }

    /// Deletes `key` if it is still the one created at `rev`: an abandoned waiter's key, or a
    /// resigning leader's (never a successor's).
    pub(crate) async fn delete_if_created(
        &self,
        user: &Option<String>,
        key: &[u8],
        rev: i64,
    ) -> Result<pb::ResponseHeader, Status> {
        let txn = TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })],
            failure: Vec::new(),
        };
        match self.order(user.clone(), KvCommand::Txn(txn)).await? {
            (KvResult::Txn(_), header) => Ok(header),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Puts `value` at `key` if it is still the one created at `rev`: the leader of an
    /// election proclaiming. Whether it was.
    pub(crate) async fn proclaim_as(
        &self,
        user: &Option<String>,
        key: &[u8],
        rev: i64,
        lease: i64,
        value: Vec<u8>,
    ) -> Result<bool, Status> {
        let txn = TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![RequestOp::Put(PutRequest {
                key: key.to_vec(),
                value: value.into(),
                lease,
                ..Default::default()
            })],
            failure: Vec::new(),
        };
        match self.order(user.clone(), KvCommand::Txn(txn)).await? {
            (KvResult::Txn(t), _) => Ok(t.succeeded),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Puts `key` with `value` under `lease` unless it exists. Returns the key's create
    /// revision and its value if it existed already.
    async fn create_waiter(
        &self,
        user: &Option<String>,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<(i64, Option<KeyValue>), Status> {
        let txn = TxnRequest {
            compare: vec![created_at(key, 0)],
            success: vec![RequestOp::Put(PutRequest {
                key: key.to_vec(),
                value: value.to_vec().into(),
                lease,
                ..Default::default()
            })],
            failure: vec![RequestOp::Range(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })],
        };
        let (r, header) = match self.order(user.clone(), KvCommand::Txn(txn)).await? {
            (KvResult::Txn(t), h) => (t, h),
            (other, _) => return Err(unexpected(other)),
        };
        if r.succeeded {
            return Ok((header.revision, None));
        }
        match r.responses.into_iter().next() {
            Some(ResponseOp::Range(got)) => match got.kvs.into_iter().next() {
                Some(kv) => Ok((kv.create_revision, Some(kv))),
                // Deleted between the compare and now cannot happen within one transaction.
                None => Err(Status::internal(
                    "a waiter's key vanished inside its transaction",
                )),
            },
            _ => Err(Status::internal(
                "a waiter's transaction answered without its read",
            )),
        }
    }

    /// Waits until no key under `prefix` was created before revision `rev`.
    async fn wait_turn(
        &self,
        user: &Option<String>,
        prefix: &[u8],
        rev: i64,
    ) -> Result<pb::ResponseHeader, Status> {
        loop {
            let (r, header) = self
                .read(user.clone(), first_or_last_before(prefix, Some(rev)))
                .await?;
            let Some(ahead) = r.kvs.into_iter().next() else {
                return Ok(header);
            };
            self.wait_deleted(user, &ahead.key, header.revision).await?;
        }
    }

    /// Waits for a change to the keys from `key` to `range_end` after revision `after` (only
    /// deletions with `deletes_only`): returns whether there was one, or `false` when the
    /// watch ended without any (compacted past, or refused), after which callers look again.
    pub(crate) async fn wait_change(
        &self,
        user: &Option<String>,
        (key, range_end): (&[u8], &[u8]),
        after: i64,
        deletes_only: bool,
    ) -> Result<bool, Status> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
        let stream = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
        let create = WatchInput::Create {
            stream,
            id: 0,
            spec: WatchSpec {
                range: KeyRange::new(key, range_end),
                start_revision: after + 1,
                prev_kv: false,
                no_put: deletes_only,
                no_delete: false,
                progress_notify: false,
            },
            access: ReadAccess {
                user: user.clone(),
                key: key.to_vec(),
                range_end: range_end.to_vec(),
            },
            tx,
        };
        // Closed however this ends, the caller going away included (even mid-create).
        let _close = CloseWatch {
            api: self.clone(),
            stream,
        };
        self.node
            .watch(create)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        while let Some(msg) = rx.recv().await {
            match msg {
                WatchMsg::Events { events, .. } if !events.is_empty() => return Ok(true),
                WatchMsg::Refused { .. } | WatchMsg::Canceled { .. } => return Ok(false),
                _ => {}
            }
        }
        Err(Status::unavailable("the node stopped"))
    }

    /// Waits until `key`, alive at revision `after`, is deleted (or the watch ends early; the
    /// caller reads again either way).
    async fn wait_deleted(
        &self,
        user: &Option<String>,
        key: &[u8],
        after: i64,
    ) -> Result<(), Status> {
        self.wait_change(user, (key, &[]), after, true).await?;
        Ok(())
    }
}

struct CloseWatch {
    api: Api,
    stream: u64,
}

impl Drop for CloseWatch {
    fn drop(&mut self) {
        let (api, stream) = (self.api.clone(), self.stream);
        tokio::spawn(async move {
            let _ = api.node.watch(WatchInput::Close { stream }).await;
        });
    }
}
