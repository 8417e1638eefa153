//! The replica list every node and client is given: `1=127.0.0.1:7001,2=127.0.0.1:7002,...`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use synod_core::NodeId;

use crate::keys::FIRST_CLIENT;

/// Replica ids and their addresses.
pub type Members = BTreeMap<NodeId, SocketAddr>;

/// Parses `ID=HOST:PORT,...`. Ids run from 1 to below [`FIRST_CLIENT`], each once; PBFT needs
/// at least 4 replicas to tolerate one liar.
pub fn parse_members(s: &str) -> Result<Members, String> {
    let mut out = Members::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("'{id}' in '{part}' is not a replica id"))?;
        if id == 0 || id >= FIRST_CLIENT {
            return Err(format!(
                "replica id {id} is out of range (1..{FIRST_CLIENT}; clients use {FIRST_CLIENT} on)"
            ));
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{addr}' in '{part}' is not HOST:PORT with a numeric host"))?;
        if out.insert(id, addr).is_some() {
            return Err(format!("replica {id} is listed twice"));
        }
    }
    if out.len() < 4 {
        return Err(format!(
            "{} replicas listed: PBFT needs at least 4 (3f + 1 with f = 1)",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bad_ones_are_explained() {
        let m = parse_members("1=127.0.0.1:1,2=127.0.0.1:2, 3=127.0.0.1:3,4=127.0.0.1:4")
            .expect("parses");
        assert_eq!(m.len(), 4);
        for (bad, says) in [
            ("1=127.0.0.1:1", "at least 4"),
            ("1=x", "HOST:PORT"),
            ("a=127.0.0.1:1", "not a replica id"),
            ("0=127.0.0.1:1", "out of range"),
            ("101=127.0.0.1:1", "out of range"),
            ("1=127.0.0.1:1,1=127.0.0.1:2", "twice"),
            ("1", "ID=HOST:PORT"),
        ] {
            let err = parse_members(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
