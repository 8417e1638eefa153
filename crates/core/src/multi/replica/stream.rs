//! Snapshots sent in pieces. A store's snapshot can outgrow any message a transport should carry
//! (the server's peer frames stop at 64 MiB), and one huge message would also hold up every
//! heartbeat queued behind it. A snapshot whose state fits in [`Config::snapshot_chunk`] bytes
//! goes whole ([`Message::InstallSnapshot`]); a larger one goes as [`Message::SnapshotChunk`]s,
//! which the receiver pulls one at a time with [`Message::SnapshotRequest`].
//!
//! The sender keeps nothing per transfer: it answers each request from a snapshot it holds, so
//! any member with the snapshot can serve it, a sender that restarted goes on where it was (for
//! a stored snapshot), and a lost piece is simply asked for again. A sender that replaces the
//! snapshot keeps the one it replaced while requests for it keep coming (else a log growing by
//! a store's size during one transfer would restart it for ever), and starts a receiver over on
//! its newer one otherwise. The receiver keeps the one transfer under way in memory only: a
//! crash starts it over.
//!
//! [`Config::snapshot_chunk`]: crate::multi::Config::snapshot_chunk

use super::{Fx, Replica};
use crate::ballot::NodeId;
use crate::multi::messages::{Message, Slot, Snapshot, SnapshotHead};
use crate::multi::state_machine::StateMachine;

/// A snapshot arriving in pieces.
#[derive(Debug)]
pub(super) struct Incoming {
    /// The sender, the only one asked for the rest.
    from: NodeId,
    slot: Slot,
    total: u64,
    state: Vec<u8>,
    head: SnapshotHead,
    /// Election timeouts since the last piece arrived: 0 or 1 while pieces keep coming (one
    /// came since the timeout before last).
    idle: u8,
}

impl Incoming {
    fn moving(&self) -> bool {
        self.idle <= 1
    }
}

/// Election timeouts after the last piece at which a transfer is dropped: its sender is gone
/// or cut off, and a catch-up request to whoever answers starts another.
const GIVE_UP: u8 = 4;

/// The most bytes reserved ahead for a transfer, whatever total its sender claims.
const RESERVE_AT_MOST: u64 = 64 << 20;

/// One piece of a snapshot, as [`Message::SnapshotChunk`] carries it.
pub(super) struct Piece {
    pub slot: Slot,
    pub offset: u64,
    pub total: u64,
    pub data: bytes::Bytes,
    pub head: Option<SnapshotHead>,
}

impl Piece {
    /// The piece a [`Message::SnapshotChunk`] carries; `None` for any other message.
    pub(super) fn of<C>(msg: Message<C>) -> Option<Piece> {
        match msg {
            Message::SnapshotChunk {
                slot,
                offset,
                total,
                data,
                head,
            } => Some(Piece {
                slot,
                offset,
                total,
                data,
                head,
            }),
            _ => None,
        }
    }
}

impl<S: StateMachine> Replica<S> {
    /// Sends `snapshot` to `to`: whole if its state fits in one piece, else its first piece.
    pub(super) fn send_snapshot(&self, to: NodeId, snapshot: &Snapshot, fx: &mut Fx<S>) {
        if snapshot.state.len() <= self.cfg.snapshot_chunk {
            let snapshot = snapshot.clone();
            fx.send(to, Message::InstallSnapshot { snapshot });
        } else {
            self.send_piece(to, snapshot, 0, fx);
        }
    }

    fn send_piece(&self, to: NodeId, snapshot: &Snapshot, offset: usize, fx: &mut Fx<S>) {
        let end = offset.saturating_add(self.cfg.snapshot_chunk);
        let end = end.min(snapshot.state.len());
        let head = (offset == 0).then(|| SnapshotHead {
            sessions: snapshot.sessions.clone(),
            membership: snapshot.membership.clone(),
        });
        fx.send(
            to,
            Message::SnapshotChunk {
                slot: snapshot.slot,
                offset: offset as u64,
                total: snapshot.state.len() as u64,
                data: snapshot.state.slice(offset..end),
                head,
            },
        );
    }

    /// The newest snapshot this replica can send: its latest stored one, or the one it built
    /// for a joiner if that is newer.
    pub(super) fn newest_snapshot(&self) -> Option<&Snapshot> {
        let held = self.snapshot.iter().chain(self.lent.iter());
        held.max_by_key(|s| s.slot)
    }

    /// The snapshot `slot` names, if this replica still holds it.
    fn held_snapshot(&self, slot: Slot) -> Option<&Snapshot> {
        let replaced = self.replaced.as_ref().map(|(s, _)| s);
        let mut held = self.snapshot.iter().chain(self.lent.iter()).chain(replaced);
        held.find(|s| s.slot == slot)
    }

    /// Our stored snapshot is about to be replaced by a newer one: keep it while transfers of
    /// it go on (see [`Replica::age_replaced`]).
    pub(super) fn keep_replaced(&mut self) {
        if let Some(old) = self.snapshot.take() {
            self.replaced = Some((old, 0));
        }
    }

    /// Paced by the election timer: the replaced snapshot is dropped once no request for it
    /// came in [`GIVE_UP`] timeouts, when every transfer of it has finished or been given up.
    pub(super) fn age_replaced(&mut self) {
        if let Some((_, idle)) = &mut self.replaced {
            *idle += 1;
            if *idle >= GIVE_UP {
                self.replaced = None;
            }
        }
    }

    /// Answers a request for the piece at `offset` of snapshot `slot`, or, if that snapshot
    /// was replaced, starts the asker over on the newer one.
    pub(super) fn on_snapshot_request(
        &mut self,
        to: NodeId,
        slot: Slot,
        offset: u64,
        fx: &mut Fx<S>,
    ) {
        if let Some(s) = self.held_snapshot(slot) {
            if offset < s.state.len() as u64 {
                self.send_piece(to, s, offset as usize, fx);
            }
            if let Some((old, idle)) = &mut self.replaced {
                if old.slot == slot {
                    *idle = 0;
                }
            }
        } else if let Some(newer) = self.newest_snapshot().filter(|s| s.slot > slot) {
            self.send_snapshot(to, newer, fx);
        }
    }

    /// A piece arrived from `from`; returns the whole snapshot once its last piece is in. A
    /// first piece starts a transfer unless one under way is newer and still moving; any other
    /// piece must be the next of the transfer under way, from its sender. Anything else is
    /// ignored: it is a duplicate, a straggler or a peer's mistake.
    pub(super) fn on_snapshot_chunk(
        &mut self,
        from: NodeId,
        piece: Piece,
        fx: &mut Fx<S>,
    ) -> Option<Snapshot> {
        let applied = self.learner.applied();
        if self.incoming.as_ref().is_some_and(|i| i.slot <= applied) && !self.joining {
            // Overtaken by a snapshot or catch-up from elsewhere.
            self.incoming = None;
        }
        let Piece {
            slot,
            offset,
            total,
            data,
            head,
        } = piece;
        if offset == 0 {
            let head = head?;
            // Checked before it displaces a transfer under way.
            let len = data.len() as u64;
            if len > total || (len == 0 && total > 0) {
                return None;
            }
            let behind = !self.joining && slot <= applied;
            let busy = self
                .incoming
                .as_ref()
                .is_some_and(|i| i.slot >= slot && i.moving());
            if behind || busy {
                return None;
            }
            self.incoming = Some(Incoming {
                from,
                slot,
                total,
                state: Vec::with_capacity(total.min(RESERVE_AT_MOST) as usize),
                head,
                idle: 0,
            });
        }
        let i = self.incoming.as_mut()?;
        let next = i.state.len() as u64;
        let fits = next
            .checked_add(data.len() as u64)
            .is_some_and(|e| e <= i.total);
        if i.from != from || i.slot != slot || i.total != total || offset != next || !fits {
            return None;
        }
        if data.is_empty() && next < i.total {
            return None;
        }
        i.state.extend_from_slice(&data);
        i.idle = 0;
        if (i.state.len() as u64) < i.total {
            let (slot, offset) = (i.slot, i.state.len() as u64);
            fx.send(from, Message::SnapshotRequest { slot, offset });
            return None;
        }
        let i = self.incoming.take()?;
        Some(Snapshot {
            slot: i.slot,
            state: i.state.into(),
            sessions: i.head.sessions,
            membership: i.head.membership,
        })
    }

    /// Paced by the election timer: asks again for a piece that did not come in a whole
    /// timeout (lost, or its sender was down), and gives a transfer up at [`GIVE_UP`].
    pub(super) fn age_incoming(&mut self, fx: &mut Fx<S>) {
        let Some(i) = &mut self.incoming else {
            return;
        };
        i.idle += 1;
        if i.idle >= GIVE_UP {
            self.incoming = None;
        } else if !i.moving() {
            let (slot, offset) = (i.slot, i.state.len() as u64);
            fx.send(i.from, Message::SnapshotRequest { slot, offset });
        }
    }

    /// A snapshot is arriving, or stalled but not given up: asking anyone for catch-up now
    /// would bring a first piece that starts the transfer over instead of resuming it (the
    /// piece asked for again is on its way). Once given up, catch-up starts another.
    pub(super) fn receiving(&self) -> bool {
        self.incoming.is_some()
    }

    /// A snapshot was installed or taken at `slot`: a transfer or a lent snapshot no newer is
    /// of no use any more.
    pub(super) fn superseded_below(&mut self, slot: Slot) {
        if self.incoming.as_ref().is_some_and(|i| i.slot <= slot) {
            self.incoming = None;
        }
        if self.lent.as_ref().is_some_and(|s| s.slot <= slot) {
            self.lent = None;
        }
    }
}
