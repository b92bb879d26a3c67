//! The PostgreSQL target's settings (`isolation`, `replica-reads`) and the small pure
//! pieces of its configuration: the `BEGIN` statement of each isolation level and the
//! networks `pg_hba.conf` trusts. Kept apart from the I/O so every rule is unit-tested.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use thiserror::Error;

/// Why the PostgreSQL target's options were refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    #[error("unknown isolation level {given:?}; valid levels are: read-committed, repeatable-read, serializable")]
    Isolation { given: String },
    #[error("replica-reads must be true or false, got {given:?}")]
    ReplicaReads { given: String },
    #[error("replica-reads needs at least two nodes (n1 is the primary, the others replicas); run with e.g. --nodes local:2")]
    ReplicaReadsNeedReplicas,
}

/// A transaction isolation level PostgreSQL implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    /// PostgreSQL's REPEATABLE READ is snapshot isolation: write skew (G2-item) is allowed.
    RepeatableRead,
    /// Serializable snapshot isolation (SSI).
    Serializable,
}

impl Isolation {
    /// The levels' names as `--set isolation=...` takes them.
    pub const NAMES: [&'static str; 3] = ["read-committed", "repeatable-read", "serializable"];

    /// The level named as on the command line (`read-committed`...).
    pub fn parse(name: &str) -> Result<Isolation, SettingsError> {
        match name {
            "read-committed" => Ok(Isolation::ReadCommitted),
            "repeatable-read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            other => Err(SettingsError::Isolation {
                given: other.to_string(),
            }),
        }
    }

    /// The statement that opens a transaction at this level.
    pub fn begin_statement(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

/// The target's options, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub isolation: Isolation,
    /// Read-only transactions go to a streaming replica (n2...) instead of the primary.
    pub replica_reads: bool,
}

impl Settings {
    /// Reads `settings` (`isolation`, default serializable; `replica-reads`, default false)
    /// for a run on `node_count` nodes.
    pub fn from_map(
        settings: &BTreeMap<String, String>,
        node_count: usize,
    ) -> Result<Settings, SettingsError> {
        let isolation = match settings.get("isolation") {
            Some(level) => Isolation::parse(level)?,
            None => Isolation::Serializable,
        };
        let replica_reads = match settings.get("replica-reads").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(SettingsError::ReplicaReads {
                    given: other.to_string(),
                })
            }
        };
        if replica_reads && node_count < 2 {
            return Err(SettingsError::ReplicaReadsNeedReplicas);
        }
        Ok(Settings {
            isolation,
            replica_reads,
        })
    }
}

/// The network `address/prefix` belongs to, in the `network/prefix` form `pg_hba.conf`
/// wants (host bits cleared). `None` when the text is not an IPv4 CIDR.
pub fn network_of(cidr: &str) -> Option<String> {
    let (addr, prefix) = cidr.trim().split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some(format!(
        "{}/{prefix}",
        Ipv4Addr::from(u32::from(addr) & mask)
    ))
}

/// The `pg_hba.conf` of a node: trust over the node's Unix socket, and from each of
/// `networks` (the cluster subnet, the control node) for ordinary and replication
/// connections. Nothing else may connect: distest never opens the database beyond them.
pub fn hba_conf(networks: &[String]) -> String {
    let mut out = String::from(
        "# Written by distest for a test cluster: trust inside the test network only.\n\
         local all all trust\n\
         local replication all trust\n",
    );
    for net in networks {
        out.push_str(&format!(
            "host all all {net} trust\nhost replication all {net} trust\n"
        ));
    }
    out
}

/// `addr` as a single-host network for `pg_hba.conf`.
pub fn host_network(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn isolation_defaults_to_serializable_and_parses_every_level() {
        assert_eq!(
            Settings::from_map(&map(&[]), 1).unwrap().isolation,
            Isolation::Serializable
        );
        for (name, begin) in [
            ("read-committed", "BEGIN ISOLATION LEVEL READ COMMITTED"),
            ("repeatable-read", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
            ("serializable", "BEGIN ISOLATION LEVEL SERIALIZABLE"),
        ] {
            let s = Settings::from_map(&map(&[("isolation", name)]), 1).unwrap();
            assert_eq!(s.isolation.begin_statement(), begin);
        }
    }

    #[test]
    fn a_bad_isolation_level_is_one_sentence_listing_the_valid_ones() {
        let err = Settings::from_map(&map(&[("isolation", "snapshot")]), 1).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"snapshot\""), "{text}");
        for level in ["read-committed", "repeatable-read", "serializable"] {
            assert!(text.contains(level), "{text}");
        }
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn replica_reads_need_two_nodes_and_a_boolean() {
        assert_eq!(
            Settings::from_map(&map(&[("replica-reads", "true")]), 1),
            Err(SettingsError::ReplicaReadsNeedReplicas)
        );
        assert!(
            Settings::from_map(&map(&[("replica-reads", "true")]), 2)
                .unwrap()
                .replica_reads
        );
        assert!(
            !Settings::from_map(&map(&[("replica-reads", "false")]), 1)
                .unwrap()
                .replica_reads
        );
        assert!(matches!(
            Settings::from_map(&map(&[("replica-reads", "yes")]), 2),
            Err(SettingsError::ReplicaReads { .. })
        ));
    }

    #[test]
    fn network_of_clears_host_bits_and_refuses_garbage() {
        assert_eq!(
            network_of("10.77.220.11/24").as_deref(),
            Some("10.77.220.0/24")
        );
        assert_eq!(network_of(" 10.1.2.3/32\n").as_deref(), Some("10.1.2.3/32"));
        assert_eq!(network_of("10.1.2.3/0").as_deref(), Some("0.0.0.0/0"));
        for bad in ["", "10.1.2.3", "10.1.2.3/33", "fe80::1/64", "x/24"] {
            assert_eq!(network_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn hba_trusts_only_the_given_networks() {
        let conf = hba_conf(&["10.77.220.0/24".into()]);
        let host_lines: Vec<&str> = conf.lines().filter(|l| l.starts_with("host")).collect();
        assert_eq!(
            host_lines,
            [
                "host all all 10.77.220.0/24 trust",
                "host replication all 10.77.220.0/24 trust"
            ]
        );
        assert!(!conf.contains("0.0.0.0/0"));
    }
}
