//! Message-flow charts in the text style of the classic Paxos diagrams: one column per process,
//! one row per group of messages, failures marked with `!`.

use std::collections::BTreeSet;
use synod_core::NodeId;

/// A column: one process, in a named group (Client, Proposer, Acceptor, Learner, Servers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The process.
    pub node: NodeId,
    /// The group it is drawn under.
    pub group: &'static str,
}

/// One row of a chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// Messages with one label from `senders` to `receivers` (a broadcast, a gather, or both).
    Msg {
        /// Who sent.
        senders: BTreeSet<NodeId>,
        /// Who received.
        receivers: BTreeSet<NodeId>,
        /// What, e.g. `Prepare(1.1)`.
        label: String,
    },
    /// A process fails; its column ends.
    Fail {
        /// The process.
        node: NodeId,
        /// Shown at the right.
        note: String,
    },
    /// A process comes back.
    Recover {
        /// The process.
        node: NodeId,
        /// Shown at the right.
        note: String,
    },
    /// A remark at the right of an otherwise plain row.
    Note(String),
}

/// A chart: columns and rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chart {
    /// The processes, left to right.
    pub columns: Vec<Column>,
    /// The rows, top to bottom.
    pub rows: Vec<Row>,
}

/// Collects the messages delivered in one scripted step into rows: one row per label, with
/// every sender and receiver of that label, and per-sender parts (a promise's vote) combined
/// into one list.
#[derive(Default)]
pub struct RowGroups {
    rows: Vec<Group>,
}

struct Group {
    key: String,
    senders: BTreeSet<NodeId>,
    receivers: BTreeSet<NodeId>,
    parts: Vec<String>,
}

impl RowGroups {
    /// Adds a message from `from` to `to` with row `key` and an optional per-sender `part`.
    pub fn add(&mut self, from: NodeId, to: NodeId, key: String, part: Option<String>) {
        let idx = match self.rows.iter().position(|r| r.key == key) {
            Some(i) => i,
            None => {
                self.rows.push(Group {
                    key,
                    senders: BTreeSet::new(),
                    receivers: BTreeSet::new(),
                    parts: Vec::new(),
                });
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[idx];
        let new_sender = row.senders.insert(from);
        row.receivers.insert(to);
        if let (Some(p), true) = (part, new_sender) {
            row.parts.push(p);
        }
    }

    /// The rows, in the order their labels first appeared; parts are joined with `sep` inside
    /// braces and the label closed: `Promise(1.1` + `{null,null})`.
    pub fn rows(self, sep: &str) -> Vec<Row> {
        self.rows
            .into_iter()
            .map(|g| Row::Msg {
                label: if g.parts.is_empty() {
                    g.key
                } else {
                    format!("{}{sep}{{{}}})", g.key, g.parts.join(sep))
                },
                senders: g.senders,
                receivers: g.receivers,
            })
            .collect()
    }
}

const IN_GROUP: usize = 3;
const BETWEEN_GROUPS: usize = 8;

impl Chart {
    /// Adds a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The labels of the message rows, in order (for tests).
    pub fn labels(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter_map(|r| match r {
                Row::Msg { label, .. } => Some(label.as_str()),
                _ => None,
            })
            .collect()
    }

    fn positions(&self) -> Vec<usize> {
        let mut x = 3;
        let mut out = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                x += if self.columns[i - 1].group == c.group {
                    IN_GROUP
                } else {
                    BETWEEN_GROUPS + self.columns[i - 1].group.len().saturating_sub(6)
                };
            }
            out.push(x);
        }
        out
    }

    fn col(&self, node: NodeId) -> Option<usize> {
        self.columns.iter().position(|c| c.node == node)
    }

    /// Renders the chart as text.
    pub fn render(&self) -> String {
        let pos = self.positions();
        let width = pos.last().copied().unwrap_or(0) + 1;
        let mut out = String::new();

        // Header: each group's name, centred-ish over its first column.
        let mut header = vec![b' '; width + 12];
        let mut i = 0;
        while i < self.columns.len() {
            let g = self.columns[i].group;
            let start = pos[i]
                .saturating_sub(g.len() / 2)
                .max(header.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 2));
            for (k, b) in g.bytes().enumerate() {
                if start + k < header.len() {
                    header[start + k] = b;
                } else {
                    header.push(b);
                }
            }
            while i < self.columns.len() && self.columns[i].group == g {
                i += 1;
            }
        }
        out.push_str(String::from_utf8_lossy(&header).trim_end());
        out.push('\n');

        let mut alive: Vec<bool> = vec![true; self.columns.len()];
        let lanes = |alive: &[bool]| {
            let mut line = vec![b' '; width];
            for (k, &p) in pos.iter().enumerate() {
                if alive[k] {
                    line[p] = b'|';
                }
            }
            line
        };
        let finish = |line: Vec<u8>, label: &str| {
            let s = String::from_utf8_lossy(&line).trim_end().to_string();
            if label.is_empty() {
                format!("{s}\n")
            } else {
                let pad = width.saturating_sub(s.len()) + 2;
                format!("{s}{}{label}\n", " ".repeat(pad))
            }
        };
        out.push_str(&finish(lanes(&alive), ""));
        for row in &self.rows {
            match row {
                Row::Msg {
                    senders,
                    receivers,
                    label,
                } => {
                    let mut line = lanes(&alive);
                    let s: Vec<usize> = senders.iter().filter_map(|n| self.col(*n)).collect();
                    let r: Vec<usize> = receivers
                        .iter()
                        .filter(|n| !senders.contains(n))
                        .filter_map(|n| self.col(*n))
                        .collect();
                    let all: Vec<usize> = s.iter().chain(r.iter()).copied().collect();
                    let (Some(&lo), Some(&hi)) = (all.iter().min(), all.iter().max()) else {
                        continue;
                    };
                    for c in line.iter_mut().take(pos[hi]).skip(pos[lo]) {
                        *c = b'-';
                    }
                    let smin = s.iter().map(|&k| pos[k]).min().unwrap_or(0);
                    let smax = s.iter().map(|&k| pos[k]).max().unwrap_or(0);
                    for &k in &r {
                        let p = pos[k];
                        line[p] = b'|';
                        if smin < p {
                            line[p - 1] = b'>';
                        }
                        if smax > p && p + 1 < line.len() {
                            line[p + 1] = b'<';
                        }
                    }
                    for &k in &s {
                        line[pos[k]] = b'X';
                    }
                    out.push_str(&finish(line, label));
                }
                Row::Fail { node, note } => {
                    let mut line = lanes(&alive);
                    if let Some(k) = self.col(*node) {
                        line[pos[k]] = b'!';
                        alive[k] = false;
                    }
                    out.push_str(&finish(line, note));
                }
                Row::Recover { node, note } => {
                    if let Some(k) = self.col(*node) {
                        alive[k] = true;
                    }
                    out.push_str(&finish(lanes(&alive), note));
                }
                Row::Note(note) => out.push_str(&finish(lanes(&alive), note)),
            }
        }
        out.push_str(&finish(lanes(&alive), ""));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn draws_broadcasts_gathers_and_failures_like_the_classic_charts() {
        let mut c = Chart {
            columns: vec![
                Column {
                    node: 0,
                    group: "Client",
                },
                Column {
                    node: 1,
                    group: "Proposer",
                },
                Column {
                    node: 11,
                    group: "Acceptor",
                },
                Column {
                    node: 12,
                    group: "Acceptor",
                },
                Column {
                    node: 21,
                    group: "Learner",
                },
            ],
            rows: Vec::new(),
        };
        c.push(Row::Msg {
            senders: set(&[0]),
            receivers: set(&[1]),
            label: "Request".into(),
        });
        c.push(Row::Msg {
            senders: set(&[1]),
            receivers: set(&[11, 12]),
            label: "Prepare(1)".into(),
        });
        c.push(Row::Msg {
            senders: set(&[11, 12]),
            receivers: set(&[1, 21]),
            label: "Accepted".into(),
        });
        c.push(Row::Fail {
            node: 12,
            note: "!! FAIL !!".into(),
        });
        let text = c.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Client"), "{text}");
        assert_eq!(
            lines[2], "   X------>|         |  |         |  Request",
            "{text}"
        );
        assert_eq!(
            lines[3], "   |       X-------->|->|         |  Prepare(1)",
            "{text}"
        );
        assert_eq!(
            lines[4], "   |       |<--------X--X-------->|  Accepted",
            "{text}"
        );
        assert!(
            lines[5].contains('!') && lines[5].ends_with("!! FAIL !!"),
            "{text}"
        );
        // After the failure the column is gone.
        let last = lines.last().unwrap();
        assert_eq!(last.matches('|').count(), 4, "{text}");
    }
}
