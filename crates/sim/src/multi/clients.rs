//! Simulated key-value clients, as an etcd client library behaves against the servers: one
//! request at a time to one node; a read that fails or goes unanswered is asked again of the
//! next node; a write that fails or goes unanswered has an unknown outcome (it may still be
//! chosen, at any later time), so the client records it as such and moves on to a fresh write.
//! The node layer, not the client, picks session ids and sequence numbers, so lane reuse and
//! commands that outlive their client's patience are exercised.

use crate::history::HistoryOp;
use std::collections::HashMap;
use synod_core::NodeId;
use synod_kv::{
    Compare, CompareResult, CompareTarget, KvCommand, KvOutput, KvResult, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use synod_node::{ProposeError, ReadResult, Ticket};

/// Client ids start here, above every node id.
pub const CLIENT_BASE: u64 = 1000;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// A linearizable read of a key.
    Get(String),
    /// A write of a fresh value.
    Put(String, String),
    /// Write `new` if the key holds `expected` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value required.
        expected: Option<String>,
        /// The value written on success.
        new: String,
    },
}

/// A request as it travels to a node.
#[derive(Clone, Debug)]
pub enum Request {
    /// A linearizable read served without a log slot (ReadIndex).
    Read(RangeRequest),
    /// A command ordered through the log.
    Propose(KvCommand),
}

/// A node's answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// To a read.
    Read(ReadResult),
    /// To a proposal.
    Write(Result<KvOutput, ProposeError>),
}

impl ClientOp {
    /// The request that carries it; `index` picks ReadIndex over the log for a get.
    pub fn request(&self, index: bool) -> Request {
        let range = |key: &str| RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        match self {
            ClientOp::Get(k) if index => Request::Read(range(k)),
            ClientOp::Get(k) => Request::Propose(KvCommand::Range(Box::new(range(k)))),
            ClientOp::Put(k, v) => Request::Propose(KvCommand::Put(PutRequest {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec().into(),
                ..Default::default()
            })),
            ClientOp::Cas { key, expected, new } => {
                let target = match expected {
                    Some(v) => CompareTarget::Value(v.as_bytes().to_vec()),
                    None => CompareTarget::Version(0),
                };
                Request::Propose(KvCommand::Txn(TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal,
                        target,
                        key: key.as_bytes().to_vec(),
                        range_end: Vec::new(),
                    }],
                    success: vec![RequestOp::Put(PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: new.as_bytes().to_vec().into(),
                        ..Default::default()
                    })],
                    failure: Vec::new(),
                }))
            }
        }
    }

    /// True for writes (whose failures leave the outcome unknown).
    pub fn is_write(&self) -> bool {
        !matches!(self, ClientOp::Get(_))
    }

    /// The history record of the operation with the result the client saw (`None`: unknown
    /// outcome), or why the answer makes no sense for it.
    pub fn history(&self, answer: Option<&Answer>) -> Result<HistoryOp, String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let output = |a: &Answer| -> Result<Option<KvResult>, String> {
            match a {
                Answer::Read(Ok((_, Ok(r)))) => Ok(Some(KvResult::Range(r.clone()))),
                Answer::Read(Ok((_, Err(e)))) => Err(format!("the store refused a read: {e}")),
                Answer::Write(Ok(KvOutput { result: Ok(r), .. })) => Ok(Some(r.clone())),
                Answer::Write(Ok(KvOutput { result: Err(e), .. })) => {
                    Err(format!("the store refused a command: {e}"))
                }
                Answer::Read(Err(_)) | Answer::Write(Err(_)) => Ok(None),
            }
        };
        let result = match answer {
            Some(a) => output(a)?,
            None => None,
        };
        Ok(match (self, result) {
            (ClientOp::Get(key), Some(KvResult::Range(r))) => HistoryOp::Get {
                key: key.clone(),
                value: r.kvs.first().map(|kv| text(&kv.value)),
            },
            (ClientOp::Put(key, value), Some(KvResult::Put(_)) | None) => HistoryOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            (ClientOp::Cas { key, expected, new }, r @ (Some(KvResult::Txn(_)) | None)) => {
                HistoryOp::Cas {
                    key: key.clone(),
                    expected: expected.clone(),
                    new: new.clone(),
                    ok: matches!(r, Some(KvResult::Txn(t)) if t.succeeded),
                }
            }
            (op, r) => return Err(format!("{op:?} was answered with {r:?}")),
        })
    }
}

/// An operation in progress.
#[derive(Clone, Debug)]
pub struct Pending {
    /// What was asked.
    pub op: ClientOp,
    /// When it was first asked.
    pub call: u64,
    /// The current attempt's ticket.
    pub ticket: Ticket,
    /// A get served by ReadIndex rather than through the log.
    pub by_index: bool,
    /// The highest store revision any client had seen answered when this operation began:
    /// its answer must come from a state at least that new.
    pub floor: i64,
}

/// One client.
#[derive(Debug)]
pub struct Client {
    /// Its id (from [`CLIENT_BASE`]).
    pub id: u64,
    attempts: u64,
    /// The operation in progress.
    pub pending: Option<Pending>,
    /// Operations completed.
    pub done: usize,
    /// The node it talks to.
    pub target: NodeId,
    /// The last value it saw of each key (for compare-and-set).
    pub last_seen: HashMap<String, Option<String>>,
    writes: u64,
}

impl Client {
    /// Client `id`, talking to `target` first.
    pub fn new(id: u64, target: NodeId) -> Self {
        Client {
            id,
            attempts: 0,
            pending: None,
            done: 0,
            target,
            last_seen: HashMap::new(),
            writes: 0,
        }
    }

    /// A ticket for the next attempt: the client id in the high bits, so a node's answer finds
    /// its way back.
    pub fn next_ticket(&mut self) -> Ticket {
        self.attempts += 1;
        (self.id << 32) | self.attempts
    }

    /// The client a ticket belongs to.
    pub fn of(ticket: Ticket) -> u64 {
        ticket >> 32
    }

    /// A fresh value: unique across every client and operation, so ground truth can tell
    /// every write apart.
    pub fn fresh_value(&mut self) -> String {
        self.writes += 1;
        format!("c{}-{}", self.id, self.writes)
    }

    /// Moves on to the next node after `ids`'s position of the current one.
    pub fn next_target(&mut self, ids: &[NodeId]) {
        let pos = ids.iter().position(|&n| n == self.target).unwrap_or(0);
        self.target = ids[(pos + 1) % ids.len()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::multi::StateMachine;
    use synod_kv::Store;

    fn run(store: &mut Store, op: &ClientOp) -> HistoryOp {
        let Request::Propose(cmd) = op.request(false) else {
            panic!("through the log")
        };
        op.history(Some(&Answer::Write(Ok(store.apply(&cmd)))))
            .unwrap()
    }

    #[test]
    fn operations_map_onto_the_real_store() {
        let mut s = Store::new();
        let cas = |e: Option<&str>, n: &str| ClientOp::Cas {
            key: "k".into(),
            expected: e.map(Into::into),
            new: n.into(),
        };
        let ok = |h: HistoryOp| matches!(h, HistoryOp::Cas { ok, .. } if ok);
        assert!(!ok(run(&mut s, &cas(Some("x"), "a"))));
        assert!(ok(run(&mut s, &cas(None, "a"))));
        assert!(!ok(run(&mut s, &cas(None, "b"))));
        assert!(ok(run(&mut s, &cas(Some("a"), "b"))));
        run(&mut s, &ClientOp::Put("j".into(), "v".into()));
        assert_eq!(
            run(&mut s, &ClientOp::Get("k".into())),
            HistoryOp::Get {
                key: "k".into(),
                value: Some("b".into())
            }
        );
        assert_eq!(
            run(&mut s, &ClientOp::Get("nope".into())),
            HistoryOp::Get {
                key: "nope".into(),
                value: None
            }
        );
    }

    #[test]
    fn an_unknown_write_is_recorded_and_a_put_answer_to_a_get_is_refused() {
        let put = ClientOp::Put("k".into(), "v".into());
        assert!(put.history(None).is_ok());
        let get = ClientOp::Get("k".into());
        assert!(get
            .history(Some(&Answer::Write(Err(ProposeError::Timeout))))
            .is_err());
    }
}
