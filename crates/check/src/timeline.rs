//! An anomaly drawn as an SVG timeline: one row per client, one bar per operation from call to
//! return, so that the overlap (or its absence) that makes a read stale is visible at a glance.

use crate::history::Entry;
use crate::report::{describe, Anomaly};
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const ROW: f64 = 44.0;
const TOP: f64 = 56.0;

#[derive(Clone, Copy)]
enum Role {
    Linearized(usize),
    Stuck,
    Pending,
}

impl Anomaly {
    /// The anomaly as a standalone SVG document: the tail of the order found (green, numbered
    /// in that order), the operation nothing explains (red) and the pending candidates (grey;
    /// dashed to the right edge when their outcome is unknown).
    pub fn to_svg(&self) -> String {
        let mut bars: Vec<(&Entry, Role)> = self
            .tail
            .iter()
            .map(|l| (&l.entry, Role::Linearized(l.position + 1)))
            .collect();
        bars.push((&self.stuck, Role::Stuck));
        bars.extend(self.pending.iter().take(40).map(|e| (e, Role::Pending)));
        let mut clients: Vec<u64> = bars.iter().map(|(e, _)| e.client).collect();
        clients.sort_unstable();
        clients.dedup();

        let t0 = bars.iter().map(|(e, _)| e.call).min().unwrap_or(0);
        let t1 = bars
            .iter()
            .map(|(e, _)| e.end().unwrap_or(e.call))
            .max()
            .unwrap_or(t0)
            .max(t0 + 1);
        // Leave room on the right for operations that never returned.
        let span = (t1 - t0) as f64 * 1.1;
        let x = |t: u64| LEFT + (t.saturating_sub(t0)) as f64 / span * (WIDTH - LEFT - RIGHT);
        let height = TOP + ROW * clients.len() as f64 + 30.0;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="11">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14">key {} : {} of {} operations ordered, key at {}; nothing explains the red one</text>"#,
            esc(&format!("{:?}", self.key)),
            self.prefix,
            self.ops,
            esc(&self.value.to_string()),
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="40" fill="#666">t = {t0}</text><text x="{}" y="40" fill="#666" text-anchor="end">t = {t1}</text>"##,
            x(t1)
        );
        for (row, c) in clients.iter().enumerate() {
            let y = TOP + ROW * row as f64;
            let _ = writeln!(
                s,
                r##"<text x="10" y="{}">client {c}</text><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#eee"/>"##,
                y + 22.0,
                WIDTH - RIGHT,
                y + 18.0,
                y + 18.0
            );
        }
        for (e, role) in bars {
            let row = clients.binary_search(&e.client).unwrap_or(0);
            let y = TOP + ROW * row as f64 + 8.0;
            let (x0, open) = (x(e.call), e.end().is_none());
            let x1 = match e.end() {
                Some(r) => x(r).max(x0 + 3.0),
                None => WIDTH - RIGHT,
            };
            let (fill, label) = match role {
                Role::Linearized(n) => ("#b7e4c7", format!("#{n} {}", describe(e))),
                Role::Stuck => ("#f4a4a4", describe(e)),
                Role::Pending => ("#ddd", describe(e)),
            };
            let dash = if open {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r##"<g><title>{} call {} ret {}</title><rect x="{x0:.1}" y="{y}" width="{:.1}" height="20" rx="3" fill="{fill}" stroke="#555"{dash}/><text x="{:.1}" y="{}">{}</text></g>"##,
                esc(&describe(e)),
                e.call,
                e.end().map_or("?".into(), |r| r.to_string()),
                x1 - x0,
                x0 + 3.0,
                y + 14.0,
                esc(&label),
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
