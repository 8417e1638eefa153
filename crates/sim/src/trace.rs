//! A run's events, for replay, debugging and flow charts.

use serde::Serialize;
use std::io::Write;

/// One thing that happened in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A message was handed to the network.
    Send {
        /// Virtual time.
        t: u64,
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// The message, summarized.
        msg: String,
    },
    /// A message was dropped.
    Drop {
        /// Virtual time.
        t: u64,
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// The message, summarized.
        msg: String,
        /// loss, partition, or dead receiver.
        reason: String,
    },
    /// A timer fired.
    Timer {
        /// Virtual time.
        t: u64,
        /// The node.
        node: u64,
        /// Which timer.
        timer: String,
    },
    /// A node crashed.
    Crash {
        /// Virtual time.
        t: u64,
        /// The node.
        node: u64,
        /// It died in the middle of a step (part of that step's writes lost, no sends).
        mid_step: bool,
    },
    /// A node restarted from its durable state.
    Restart {
        /// Virtual time.
        t: u64,
        /// The node.
        node: u64,
    },
    /// The network split.
    Partition {
        /// Virtual time.
        t: u64,
        /// Which split.
        label: String,
    },
    /// The network healed.
    Heal {
        /// Virtual time.
        t: u64,
    },
    /// A node learned that a slot (or the single decree) is chosen.
    Chosen {
        /// Virtual time.
        t: u64,
        /// The node.
        node: u64,
        /// The slot (0 for single-decree Paxos).
        slot: u64,
        /// The value, summarized.
        value: String,
    },
    /// A client event.
    Client {
        /// Virtual time.
        t: u64,
        /// The client.
        client: u64,
        /// What happened.
        what: String,
    },
    /// Anything else worth a line.
    Note {
        /// Virtual time.
        t: u64,
        /// The text.
        text: String,
    },
}

thread_local! {
    /// The events of a trace dropped while its run unwound from a panic, for the runner to
    /// report with that panic.
    static SALVAGED: std::cell::RefCell<Option<Vec<TraceEvent>>> =
        const { std::cell::RefCell::new(None) };
}

/// Takes the events of the last trace that unwound with a panic on this thread, if any.
pub fn take_salvaged() -> Option<Vec<TraceEvent>> {
    SALVAGED.with(|s| s.borrow_mut().take())
}

/// A trace being recorded, or not (recording costs time; runs of many seeds skip it).
#[derive(Debug, Default)]
pub struct Trace {
    events: Option<Vec<TraceEvent>>,
}

impl Drop for Trace {
    /// A run that panics unwinds with its trace; keeping the events lets the runner show what
    /// led up to the panic.
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(events) = self.events.take() {
                SALVAGED.with(|s| *s.borrow_mut() = Some(events));
            }
        }
    }
}

impl Trace {
    /// A trace that records when `on`.
    pub fn new(on: bool) -> Self {
        Trace {
            events: on.then(Vec::new),
        }
    }

    /// True when recording.
    pub fn on(&self) -> bool {
        self.events.is_some()
    }

    /// Records an event built only when recording.
    pub fn record(&mut self, make: impl FnOnce() -> TraceEvent) {
        if let Some(ev) = &mut self.events {
            ev.push(make());
        }
    }

    /// The events recorded.
    pub fn events(&self) -> &[TraceEvent] {
        self.events.as_deref().unwrap_or(&[])
    }

    /// Takes the events recorded.
    pub fn take(&mut self) -> Vec<TraceEvent> {
        self.events.take().unwrap_or_default()
    }
}

/// Writes events as JSON lines.
pub fn write_jsonl(events: &[TraceEvent], mut out: impl Write) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
