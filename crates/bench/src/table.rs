//! The comparison table: each figure for Synod and etcd, and their ratio.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Which direction is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput: more is better.
    Higher,
    /// Latency: less is better.
    Lower,
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The case (`put, 64 clients / 8 conns`).
    pub case: String,
    /// The figure (`ops/s`, `p50 ms`, `p99 ms`).
    pub figure: String,
    /// Synod's value (median over rounds).
    pub synod: f64,
    /// etcd's value (median over rounds).
    pub etcd: f64,
    /// Which direction is better.
    pub better: Better,
}

impl Row {
    /// Synod / etcd; none when etcd's figure is zero.
    pub fn ratio(&self) -> Option<f64> {
        (self.etcd != 0.0).then(|| self.synod / self.etcd)
    }
}

/// The median of `xs` (the mean of the middle two for an even count); none if empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_value(figure: &str, x: f64) -> String {
    if figure.contains("ops/s") {
        format!("{:.0}", x)
    } else if x < 10.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

/// The table as GitHub markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s =
        String::from("| case | figure | synod | etcd | synod/etcd |\n|---|---|---:|---:|---:|\n");
    for r in rows {
        let ratio = r.ratio().map_or("-".to_string(), |q| format!("{q:.2}x"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.case,
            r.figure,
            fmt_value(&r.figure, r.synod),
            fmt_value(&r.figure, r.etcd),
            ratio
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn ratio_and_markdown() {
        let rows = vec![
            Row {
                case: "put, 64 clients".into(),
                figure: "ops/s".into(),
                synod: 36000.0,
                etcd: 9000.0,
                better: Better::Higher,
            },
            Row {
                case: "put, 1 client".into(),
                figure: "p50 ms".into(),
                synod: 0.3,
                etcd: 0.0,
                better: Better::Lower,
            },
        ];
        assert_eq!(rows[0].ratio(), Some(4.0));
        assert_eq!(rows[1].ratio(), None);
        let md = markdown(&rows);
        assert!(
            md.contains("| put, 64 clients | ops/s | 36000 | 9000 | 4.00x |"),
            "{md}"
        );
        assert!(
            md.contains("| put, 1 client | p50 ms | 0.300 | 0.000 | - |"),
            "{md}"
        );
        assert_eq!(md.lines().count(), 4);
    }
}
