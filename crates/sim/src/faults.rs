//! Which faults a simulation injects, and how often.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The kinds of fault the simulator can inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Messages vanish.
    pub loss: bool,
    /// Messages arrive twice.
    pub dup: bool,
    /// Some messages are held back long enough to be overtaken.
    pub reorder: bool,
    /// The network splits: majority/minority, an isolated leader, or one-way links.
    pub partition: bool,
    /// Nodes crash (losing everything not persisted, sometimes in the middle of a step) and
    /// restart later.
    pub crash: bool,
    /// Nodes pause (a stalled process: a long GC, a stopped VM) and resume later, acting on
    /// what queued up meanwhile as if no time had passed.
    pub pause: bool,
}

impl Faults {
    /// No faults.
    pub const NONE: Faults = Faults {
        loss: false,
        dup: false,
        reorder: false,
        partition: false,
        crash: false,
        pause: false,
    };

    /// Every fault.
    pub const ALL: Faults = Faults {
        loss: true,
        dup: true,
        reorder: true,
        partition: true,
        crash: true,
        pause: true,
    };

    /// True when any fault is on.
    pub fn any(&self) -> bool {
        *self != Faults::NONE
    }
}

impl FromStr for Faults {
    type Err = String;

    /// Parses a comma-separated list: `loss,dup,reorder,partition,crash`, or `all`, or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut f = Faults::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => f = Faults::ALL,
                "none" => {}
                "loss" => f.loss = true,
                "dup" => f.dup = true,
                "reorder" => f.reorder = true,
                "partition" => f.partition = true,
                "crash" => f.crash = true,
                "pause" => f.pause = true,
                other => {
                    return Err(format!(
                        "unknown fault '{other}'; expected a comma-separated list of \
                         loss, dup, reorder, partition, crash, pause, or 'all' / 'none'"
                    ))
                }
            }
        }
        Ok(f)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Faults::ALL {
            return f.write_str("all");
        }
        let names: Vec<&str> = [
            (self.loss, "loss"),
            (self.dup, "dup"),
            (self.reorder, "reorder"),
            (self.partition, "partition"),
            (self.crash, "crash"),
            (self.pause, "pause"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_round_trips() {
        assert_eq!("all".parse::<Faults>().unwrap(), Faults::ALL);
        assert_eq!("none".parse::<Faults>().unwrap(), Faults::NONE);
        let f: Faults = "loss, crash".parse().unwrap();
        assert!(f.loss && f.crash && !f.dup);
        assert_eq!(f.to_string(), "loss,crash");
        assert_eq!(
            Faults::ALL.to_string().parse::<Faults>().unwrap(),
            Faults::ALL
        );
        assert!("loss,fire".parse::<Faults>().unwrap_err().contains("fire"));
    }
}
