//! What the PBFT and Fast Byzantine liars share: drawing a set of lies, and bending every
//! message a wrapped correct node sends.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use synod_core::effects::{Effects, Outgoing};

/// A non-empty subset of `all`, each lie in it with probability 0.4.
pub fn draw<L: Copy>(all: &[L], rng: &mut ChaCha8Rng) -> Vec<L> {
    let mut lies: Vec<L> = all.iter().copied().filter(|_| rng.gen_bool(0.4)).collect();
    if lies.is_empty() {
        lies.push(*all.choose(rng).expect("a liar has some lie to tell"));
    }
    lies
}

/// A liar that rewrites, one by one, the messages of the correct node it wraps.
pub trait Bender<M> {
    /// Whether to drop the next message (selective silence).
    fn drops(&mut self) -> bool;

    /// The message sent instead of `msg`.
    fn bend_one(&mut self, msg: M) -> M;

    /// `fx` with every send, before and after the sync, dropped or bent.
    fn bend<P, O, T>(&mut self, mut fx: Effects<M, P, O, T>) -> Effects<M, P, O, T> {
        let sends = std::mem::take(&mut fx.send);
        let held = std::mem::take(&mut fx.send_after_sync);
        fx.send = self.bend_list(sends);
        fx.send_after_sync = self.bend_list(held);
        fx
    }

    /// `list`, each message dropped or bent.
    fn bend_list(&mut self, list: Vec<Outgoing<M>>) -> Vec<Outgoing<M>> {
        let mut out = Vec::with_capacity(list.len());
        for o in list {
            if self.drops() {
                continue;
            }
            let msg = self.bend_one(o.msg);
            out.push(Outgoing { to: o.to, msg });
        }
        out
    }
}
