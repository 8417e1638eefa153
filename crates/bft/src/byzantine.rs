//! Deliberately faulty replicas, for tests and demonstrations: `synod server --protocol pbft
//! --byzantine MODE` runs the correct core and bends what it sends on the way out. A liar
//! signs with its own key only (it holds no other), which is all a real attacker who took
//! over one machine would hold.

use crate::kv::KvResult;
use crate::wire::KvMessage;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use synod_core::auth::{digest_of, Signed, Signer};
use synod_core::effects::Outgoing;
use synod_core::pbft::{Commit, Message, PrePrepare, Prepare, Reply, NULL_DIGEST};
use synod_core::NodeId;

/// How a faulty replica lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Tells half of its peers something else: as primary, a null request where the others
    /// get the client's; as a backup, prepares and commits for another digest. Clients get a
    /// wrong result.
    Equivocate,
    /// Forges prepares, commits and replies in the other replicas' names (signed with its own
    /// key, so they fail verification), and answers clients with a wrong result.
    Forge,
    /// Sends nothing at all, to peers or clients.
    Silent,
}

impl std::str::FromStr for Byzantine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "equivocate" => Ok(Byzantine::Equivocate),
            "forge" => Ok(Byzantine::Forge),
            "silent" => Ok(Byzantine::Silent),
            _ => Err(format!(
                "unknown Byzantine mode '{s}': use equivocate, forge or silent"
            )),
        }
    }
}

/// A liar's way of bending a replica's sends.
pub struct Liar {
    mode: Byzantine,
    signer: Arc<dyn Signer>,
    replicas: Vec<NodeId>,
    /// Messages dropped, changed or invented so far.
    lies: u64,
}

impl Liar {
    /// A liar signing with `signer`, among `replicas`.
    pub fn new(mode: Byzantine, signer: Arc<dyn Signer>, replicas: Vec<NodeId>) -> Self {
        Liar {
            mode,
            signer,
            replicas,
            lies: 0,
        }
    }

    /// Messages it dropped, changed or invented so far: a test's proof that it lied.
    pub fn lies(&self) -> u64 {
        self.lies
    }

    /// What the liar sends instead of `out`.
    pub fn bend(&mut self, out: Vec<Outgoing<KvMessage>>) -> Vec<Outgoing<KvMessage>> {
        let before = out.clone();
        let bent = self.bend_all(out);
        let kept = bent.iter().filter(|o| before.contains(o)).count();
        self.lies += (before.len() - kept.min(before.len()) + bent.len() - kept) as u64;
        bent
    }

    fn bend_all(&self, out: Vec<Outgoing<KvMessage>>) -> Vec<Outgoing<KvMessage>> {
        match self.mode {
            Byzantine::Silent => Vec::new(),
            Byzantine::Equivocate => out
                .into_iter()
                .map(|o| {
                    // Replicas with even ids and every client hear the other story.
                    if o.to % 2 == 0 || !self.replicas.contains(&o.to) {
                        Outgoing {
                            to: o.to,
                            msg: self.other_story(o.msg),
                        }
                    } else {
                        o
                    }
                })
                .collect(),
            Byzantine::Forge => {
                let mut bent = Vec::with_capacity(out.len() * self.replicas.len());
                for o in out {
                    for &victim in self.replicas.iter().filter(|&&r| r != self.signer.id()) {
                        if let Some(msg) = self.forge(&o.msg, victim) {
                            bent.push(Outgoing { to: o.to, msg });
                        }
                    }
                    let msg = match o.msg {
                        Message::Reply(_) => self.other_story(o.msg),
                        m => m,
                    };
                    bent.push(Outgoing { to: o.to, msg });
                }
                bent
            }
        }
    }

    /// The same statement with another value, properly signed by the liar.
    fn other_story(&self, msg: KvMessage) -> KvMessage {
        let s = self.signer.as_ref();
        match msg {
            Message::PrePrepare(pp, _) => Message::PrePrepare(
                Signed::new(
                    s,
                    PrePrepare {
                        digest: NULL_DIGEST,
                        ..pp.body
                    },
                ),
                None,
            ),
            Message::Prepare(p) => Message::Prepare(Signed::new(
                s,
                Prepare {
                    digest: twisted(&p.body.digest),
                    ..p.body
                },
            )),
            Message::Commit(c) => Message::Commit(Signed::new(
                s,
                Commit {
                    digest: twisted(&c.body.digest),
                    ..c.body
                },
            )),
            Message::Reply(r) => Message::Reply(Signed::new(
                s,
                Reply {
                    result: wrong(&r.body.result),
                    ..r.body
                },
            )),
            m => m,
        }
    }

    /// `msg` (a prepare, commit or reply) rewritten as if `victim` had sent it, for a value
    /// `victim` never agreed to.
    fn forge(&self, msg: &KvMessage, victim: NodeId) -> Option<KvMessage> {
        let s = self.signer.as_ref();
        Some(match msg {
            Message::Prepare(p) => Message::Prepare(Signed::forged(
                s,
                victim,
                Prepare {
                    digest: twisted(&p.body.digest),
                    ..p.body
                },
            )),
            Message::Commit(c) => Message::Commit(Signed::forged(
                s,
                victim,
                Commit {
                    digest: twisted(&c.body.digest),
                    ..c.body
                },
            )),
            Message::Reply(r) => Message::Reply(Signed::forged(
                s,
                victim,
                Reply {
                    result: wrong(&r.body.result),
                    ..r.body.clone()
                },
            )),
            _ => return None,
        })
    }
}

/// Another digest, derived from `d`.
fn twisted(d: &[u8; 32]) -> [u8; 32] {
    digest_of(&(b"twisted", d))
}

/// A result of the same kind that the correct replicas did not return.
fn wrong(r: &KvResult) -> KvResult {
    let lie = Some(ByteBuf::from(b"a Byzantine lie".to_vec()));
    match r {
        KvResult::Put { .. } => KvResult::Put { prev: lie },
        KvResult::Get { .. } => KvResult::Get { value: lie },
        KvResult::Delete { existed } => KvResult::Delete { existed: !existed },
    }
}
