//! What the clients ask for: the operation mix, the keys they touch and the values they write.

use crate::error::BenchError;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The operation each request performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Put a key (a replicated, durable write).
    Put,
    /// Linearizable get (etcd: ReadIndex; Synod: through the log).
    Get,
    /// Serializable get: served by the member that receives it, without consensus.
    GetSerializable,
    /// Linearizable gets and puts, in the proportion given by the read percentage.
    Mix,
    /// A compare-and-set transaction: put if the key's mod revision is the one last seen,
    /// otherwise read the key to learn its current revision.
    Cas,
}

impl Workload {
    /// Every workload, in the order the help text lists them.
    pub const ALL: [Workload; 5] = [
        Workload::Put,
        Workload::Get,
        Workload::GetSerializable,
        Workload::Mix,
        Workload::Cas,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::GetSerializable => "get-serializable",
            Workload::Mix => "mix",
            Workload::Cas => "cas",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                BenchError::Config(format!(
                    "unknown workload '{s}': use put, get, get-serializable, mix or cas"
                ))
            })
    }
}

/// How keys are drawn from the key space.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key of rank k (1-based) drawn with probability proportional to 1/k^s.
    Zipf {
        /// The exponent; 0.99 is YCSB's default.
        s: f64,
    },
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => f.write_str("uniform"),
            KeyDist::Zipf { s } => write!(f, "zipf(s={s})"),
        }
    }
}

/// Draws key indices in `0..keys` from a distribution, from a seeded generator so that runs
/// repeat.
pub struct KeyChooser {
    keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyChooser {
    /// A chooser over `keys` keys.
    pub fn new(keys: u64, dist: KeyDist) -> Result<Self, BenchError> {
        if keys == 0 {
            return Err(BenchError::Config("--keys must be at least 1".into()));
        }
        let zipf = match dist {
            KeyDist::Uniform => None,
            KeyDist::Zipf { s } => Some(Zipf::new(keys, s).map_err(|e| {
                BenchError::Config(format!("zipf exponent {s} is not usable: {e}"))
            })?),
        };
        Ok(KeyChooser { keys, zipf })
    }

    /// The next key index.
    pub fn next(&self, rng: &mut StdRng) -> u64 {
        match &self.zipf {
            None => rng.gen_range(0..self.keys),
            // Zipf yields ranks 1..=keys as floats; rank 1 (the hottest) becomes key 0.
            Some(z) => (z.sample(rng) as u64).clamp(1, self.keys) - 1,
        }
    }
}

/// The key for index `i`: fixed width so that every key has the same size.
pub fn key_name(i: u64) -> Vec<u8> {
    format!("bench/{i:010}").into_bytes()
}

/// A value of `size` bytes. Its content does not matter to either store (neither compresses).
pub fn value_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>().ok(), Some(w));
        }
        assert!("delete".parse::<Workload>().is_err());
    }

    #[test]
    fn uniform_keys_cover_the_space_evenly() {
        let c = KeyChooser::new(10, KeyDist::Uniform).expect("valid");
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[c.next(&mut rng) as usize] += 1;
        }
        // Each key expects 10,000 draws; a 10% band is far outside the binomial noise (~1%).
        for (k, &n) in counts.iter().enumerate() {
            assert!((9_000..=11_000).contains(&n), "key {k} drawn {n} times");
        }
    }

    #[test]
    fn zipf_keys_follow_the_power_law() {
        let keys = 1000;
        let c = KeyChooser::new(keys, KeyDist::Zipf { s: 0.99 }).expect("valid");
        let mut rng = StdRng::seed_from_u64(42);
        let mut counts = vec![0u32; keys as usize];
        let draws = 200_000;
        for _ in 0..draws {
            let k = c.next(&mut rng);
            assert!(k < keys);
            counts[k as usize] += 1;
        }
        // P(rank k) = k^-s / H(n, s): compare the hottest key with its expectation, and the
        // ratio of the hottest to the tenth hottest with 10^s.
        let h: f64 = (1..=keys).map(|k| (k as f64).powf(-0.99)).sum();
        let expect_first = draws as f64 / h;
        let first = counts[0] as f64;
        assert!(
            (first - expect_first).abs() < 0.05 * expect_first,
            "hottest key drawn {first} times, expected about {expect_first:.0}"
        );
        let ratio = first / counts[9] as f64;
        assert!(
            (ratio - 10f64.powf(0.99)).abs() < 1.5,
            "hottest/tenth = {ratio:.2}, expected about 9.8"
        );
    }

    #[test]
    fn same_seed_same_keys() {
        let c = KeyChooser::new(1000, KeyDist::Zipf { s: 1.1 }).expect("valid");
        let a: Vec<u64> = {
            let mut r = StdRng::seed_from_u64(3);
            (0..50).map(|_| c.next(&mut r)).collect()
        };
        let b: Vec<u64> = {
            let mut r = StdRng::seed_from_u64(3);
            (0..50).map(|_| c.next(&mut r)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn keys_and_values_have_fixed_sizes() {
        assert_eq!(key_name(0).len(), key_name(9_999_999).len());
        assert_eq!(value_of(256).len(), 256);
        assert!(KeyChooser::new(0, KeyDist::Uniform).is_err());
    }
}
