//! Who leads: the nodes' admin `/status` pages.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fields of `/status` the harness uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    /// The node.
    pub id: u64,
    /// Whom it believes leads.
    pub leader: Option<u64>,
    /// `leader`, `follower` or `candidate`.
    pub role: String,
    /// Its ballot round.
    pub term: u64,
}

/// Fetches `/status` from `admin` (over TLS with `tls`); `None` if the node does not answer
/// within `within` (dead, paused, cut off) or answers something else.
pub async fn fetch(
    admin: SocketAddr,
    within: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
) -> Option<Status> {
    let ask = async {
        let tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
        let request = format!("GET /status HTTP/1.0\r\nHost: {admin}\r\n\r\n");
        let mut text = String::new();
        match tls {
            None => exchange(tcp, &request, &mut text).await?,
            Some(tls) => {
                // Every node's certificate names localhost (what `synod certs` writes); who
                // leads is all that is asked here, not which node answers.
                let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
                let s = tls.connect(name, tcp).await.ok()?;
                exchange(s, &request, &mut text).await?
            }
        }
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(within, ask).await.ok().flatten()
}

async fn exchange(
    mut s: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
    text: &mut String,
) -> Option<()> {
    s.write_all(request.as_bytes()).await.ok()?;
    s.read_to_string(text).await.ok()?;
    Some(())
}

/// The leader among `statuses`: the node that says it leads with the highest term, else the
/// one most nodes name.
pub fn leader(statuses: &[Status]) -> Option<u64> {
    if let Some(s) = statuses
        .iter()
        .filter(|s| s.role == "leader")
        .max_by_key(|s| s.term)
    {
        return Some(s.id);
    }
    let mut votes: Vec<(u64, usize)> = Vec::new();
    for l in statuses.iter().filter_map(|s| s.leader) {
        match votes.iter_mut().find(|v| v.0 == l) {
            Some(v) => v.1 += 1,
            None => votes.push((l, 1)),
        }
    }
    votes.into_iter().max_by_key(|v| v.1).map(|v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: u64, leader: Option<u64>, role: &str, term: u64) -> Status {
        Status {
            id,
            leader,
            role: role.into(),
            term,
        }
    }

    #[test]
    fn the_newest_self_declared_leader_wins() {
        let s = [
            st(1, Some(1), "leader", 3),
            st(2, Some(2), "leader", 5),
            st(3, Some(2), "follower", 5),
        ];
        assert_eq!(leader(&s), Some(2));
    }

    #[test]
    fn otherwise_the_most_named() {
        let s = [st(1, Some(3), "follower", 3), st(2, Some(3), "follower", 3)];
        assert_eq!(leader(&s), Some(3));
        assert_eq!(leader(&[st(1, None, "candidate", 4)]), None);
    }
}
