//! The Watch service: one bidirectional stream per client carries many watchers.

use crate::convert::kv_out;
use crate::grpc::Api;
use crate::node::WatchInput;
use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;
use crate::watch::{WatchMsg, WatchSpec, STREAM_BUFFER};
use futures::Stream;
use pb::watch_create_request::FilterType;
use pb::watch_request::RequestUnion;
use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use synod_kv::{Event, EventKind, KeyRange};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

fn event_out(e: Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv_out(e.kv)),
        prev_kv: e.prev_kv.map(kv_out),
    }
}

fn spec_in(c: &pb::WatchCreateRequest) -> WatchSpec {
    let has = |f: FilterType| c.filters.contains(&(f as i32));
    WatchSpec {
        range: KeyRange::new(&c.key, &c.range_end),
        start_revision: c.start_revision,
        prev_kv: c.prev_kv,
        no_put: has(FilterType::Noput),
        no_delete: has(FilterType::Nodelete),
        progress_notify: c.progress_notify,
    }
}

impl Api {
    fn watch_response(&self, msg: WatchMsg) -> pb::WatchResponse {
        let mut r = pb::WatchResponse::default();
        let revision = match msg {
            WatchMsg::Refused { reason } => {
                r.watch_id = -1;
                r.created = true;
                r.canceled = true;
                r.cancel_reason = reason;
                0
            }
            WatchMsg::Created { id, revision } => {
                r.watch_id = id;
                r.created = true;
                revision
            }
            WatchMsg::Events {
                id,
                revision,
                events,
            } => {
                r.watch_id = id;
                r.events = events.into_iter().map(event_out).collect();
                revision
            }
            WatchMsg::Canceled {
                id,
                revision,
                compact_revision,
                reason,
            } => {
                r.watch_id = id;
                r.canceled = true;
                r.compact_revision = compact_revision;
                r.cancel_reason = reason;
                revision
            }
            WatchMsg::Progress { id, revision } => {
                r.watch_id = id;
                revision
            }
        };
        r.header = Some(self.header(revision));
        r
    }
}

/// Reads a client's watch requests until its stream ends, then drops its watchers.
async fn serve_requests(
    api: Api,
    user: Option<String>,
    stream: u64,
    mut inbound: Streaming<pb::WatchRequest>,
    tx: mpsc::Sender<WatchMsg>,
) {
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    let mut next_id = 0i64;
    while let Ok(Some(req)) = inbound.message().await {
        let input = match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                // The node checks it again where the watch is created.
                let access = crate::auth::ReadAccess {
                    user: user.clone(),
                    key: c.key.clone(),
                    range_end: c.range_end.clone(),
                };
                if let Err(e) = api.check_access(&access) {
                    let reason = e.message().to_string();
                    let _ = tx.send(WatchMsg::Refused { reason }).await;
                    continue;
                }
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    while ids.contains(&next_id) {
                        next_id += 1;
                    }
                    next_id
                };
                if !ids.insert(id) {
                    // etcd answers a duplicate id with a created-and-canceled response.
                    let _ = tx
                        .send(WatchMsg::Canceled {
                            id,
                            revision: 0,
                            compact_revision: 0,
                            reason: "mvcc: duplicate watch ID provided on the WatchStream"
                                .to_string(),
                        })
                        .await;
                    continue;
                }
                WatchInput::Create {
                    stream,
                    id,
                    spec: spec_in(&c),
                    access,
                    tx: tx.clone(),
                }
            }
            Some(RequestUnion::CancelRequest(c)) => {
                ids.remove(&c.watch_id);
                WatchInput::Cancel {
                    stream,
                    id: c.watch_id,
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => WatchInput::Progress {
                stream,
                tx: tx.clone(),
            },
            None => continue,
        };
        if api.node.watch(input).await.is_err() {
            return;
        }
    }
    let _ = api.node.watch(WatchInput::Close { stream }).await;
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::watch_server::Watch for Api {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let user = self.user_of(&req)?;
        let stream = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(serve_requests(
            self.clone(),
            user,
            stream,
            req.into_inner(),
            tx,
        ));
        let api = self.clone();
        let out = futures::stream::unfold((rx, api), |(mut rx, api)| async move {
            let msg = rx.recv().await?;
            Some((Ok(api.watch_response(msg)), (rx, api)))
        });
        Ok(Response::new(Box::pin(out)))
    }
}
