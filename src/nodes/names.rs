//! Names and addresses of a local cluster's host objects, and how to recognise ours.
//!
//! Everything carries the `dt` prefix and the cluster id, so teardown finds exactly one
//! cluster's objects by name even after the control node was SIGKILLed. Linux interface
//! names hold at most 15 bytes, hence the short id (1..=5 of `[a-z0-9]`):
//!
//! | object | name | example |
//! |---|---|---|
//! | namespace of node i | `dt-<id>-n<i>` | `dt-main-n1` |
//! | bridge | `dt<id>-br` | `dtmain-br` |
//! | veth, host side | `dt<id>-n<i>` | `dtmain-n1` |
//! | veth, node side before the move (then `eth0`) | `dt<id>-p<i>` | `dtmain-p1` |
//! | iptables comment | `distest:<id>` | `distest:main` |
//!
//! Node i (from 1) gets address `network + 10 + i`, the bridge `network + 1`.

use super::NodesError;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The cluster id used when none is given.
pub const DEFAULT_CLUSTER_ID: &str = "main";
/// The subnet used when none is given.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/24";
/// Longest cluster id: `dt` + id + `-n99` must fit Linux's 15-byte interface names.
pub const MAX_CLUSTER_ID_LEN: usize = 5;
/// Most nodes of a local cluster (two-digit node numbers keep names within 15 bytes).
pub const MAX_LOCAL_NODES: usize = 99;
/// Node i's host part is `NODE_HOST_OFFSET + i`.
const NODE_HOST_OFFSET: u32 = 10;

/// Checks a cluster id: 1..=5 of lowercase ASCII letters and digits.
pub fn validate_cluster_id(id: &str) -> Result<(), NodesError> {
    if id.is_empty()
        || id.len() > MAX_CLUSTER_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(NodesError::BadSpec(format!(
            "cluster id {id:?} is invalid; use 1 to {MAX_CLUSTER_ID_LEN} lowercase letters or digits (it goes into 15-byte interface names)"
        )));
    }
    Ok(())
}

/// An IPv4 subnet such as `10.77.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Subnet {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl FromStr for Subnet {
    type Err = NodesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            NodesError::BadSpec(format!(
                "subnet {s:?} is invalid: {why}; write it as an IPv4 network such as 10.77.0.0/24"
            ))
        };
        let (addr, len) = s.split_once('/').ok_or_else(|| bad("no /prefix length"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        if !(8..=28).contains(&prefix_len) {
            return Err(bad("the prefix length must be between 8 and 28"));
        }
        let subnet = Subnet {
            network: addr,
            prefix_len,
        };
        if u32::from(addr) & !subnet.mask() != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(subnet)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Subnet {
    type Error = NodesError;

    fn try_from(s: String) -> Result<Self, NodesError> {
        s.parse()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix_len))
    }

    /// Addresses usable for hosts (network and broadcast excluded).
    fn host_count(&self) -> u32 {
        (1u32 << (32 - u32::from(self.prefix_len))) - 2
    }

    /// The bridge's (the host's) address in the cluster: `.1`.
    pub fn bridge_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Node `i`'s (1-based) address, or an error when the subnet is too small.
    pub fn node_address(&self, i: usize) -> Result<Ipv4Addr, NodesError> {
        let host = u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(NODE_HOST_OFFSET))
            .unwrap_or(u32::MAX);
        if i == 0 || host >= self.host_count() {
            return Err(NodesError::BadSpec(format!(
                "subnet {self} has no room for node {i} (node i gets host .{host}); use a larger subnet"
            )));
        }
        Ok(Ipv4Addr::from(u32::from(self.network) + host))
    }

    /// True when the two networks share any address.
    pub fn overlaps(&self, addr: Ipv4Addr, prefix_len: u8) -> bool {
        let shorter = self.prefix_len.min(prefix_len);
        let mask = if shorter == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(shorter))
        };
        u32::from(self.network) & mask == u32::from(addr) & mask
    }
}

/// The host-object names of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    id: String,
}

impl ClusterNames {
    /// Names for cluster `id` (validated).
    pub fn new(id: &str) -> Result<Self, NodesError> {
        validate_cluster_id(id)?;
        Ok(ClusterNames { id: id.to_string() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Node `i`'s name as the target and the hosts files know it: `n<i>`.
    pub fn node(&self, i: usize) -> String {
        format!("n{i}")
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("dt-{}-n{i}", self.id)
    }

    pub fn bridge(&self) -> String {
        format!("dt{}-br", self.id)
    }

    pub fn veth_host(&self, i: usize) -> String {
        format!("dt{}-n{i}", self.id)
    }

    pub fn veth_peer(&self, i: usize) -> String {
        format!("dt{}-p{i}", self.id)
    }

    /// The comment every iptables rule of this cluster carries.
    pub fn iptables_comment(&self) -> String {
        format!("distest:{}", self.id)
    }

    /// True for one of this cluster's namespaces.
    pub fn owns_namespace(&self, name: &str) -> bool {
        parse_namespace(name).is_some_and(|(id, _)| id == self.id)
    }

    /// True for one of this cluster's links (bridge or veth, either side).
    pub fn owns_link(&self, name: &str) -> bool {
        parse_link(name).is_some_and(|id| id == self.id)
    }
}

/// `dt-<id>-n<i>` → (id, i) for any distest namespace.
pub fn parse_namespace(name: &str) -> Option<(&str, usize)> {
    let rest = name.strip_prefix("dt-")?;
    let (id, node) = rest.split_once("-n")?;
    validate_cluster_id(id).ok()?;
    Some((id, parse_node_number(node)?))
}

/// `dt<id>-br|n<i>|p<i>` → id for any distest link.
pub fn parse_link(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("dt")?;
    let (id, kind) = rest.split_once('-')?;
    validate_cluster_id(id).ok()?;
    let ok = kind == "br"
        || kind
            .strip_prefix('n')
            .or_else(|| kind.strip_prefix('p'))
            .and_then(parse_node_number)
            .is_some();
    ok.then_some(id)
}

fn parse_node_number(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_fits_linux_interface_limit() {
        let names = ClusterNames::new("abcde").unwrap();
        for name in [names.bridge(), names.veth_host(99), names.veth_peer(99)] {
            assert!(name.len() <= 15, "{name}");
        }
    }

    #[test]
    fn cluster_ids_are_restricted() {
        for bad in ["", "abcdef", "A", "a-b", "a b", "ü"] {
            assert!(validate_cluster_id(bad).is_err(), "{bad:?}");
        }
        validate_cluster_id("t101").unwrap();
    }

    #[test]
    fn names_round_trip_and_do_not_match_other_clusters() {
        let a = ClusterNames::new("a").unwrap();
        let ab = ClusterNames::new("ab").unwrap();
        assert_eq!(parse_namespace(&a.namespace(3)), Some(("a", 3)));
        assert!(
            a.owns_link(&a.bridge())
                && a.owns_link(&a.veth_host(12))
                && a.owns_link(&a.veth_peer(1))
        );
        assert!(!a.owns_link(&ab.bridge()) && !a.owns_namespace(&ab.namespace(1)));
        for foreign in [
            "dtest0", "dt-a-x1", "docker0", "dta-n01", "dta-n123", "dt-a-n", "dta-brx",
        ] {
            assert!(
                parse_link(foreign).is_none() && parse_namespace(foreign).is_none(),
                "{foreign}"
            );
        }
    }

    #[test]
    fn subnet_parses_and_assigns_addresses() {
        let s: Subnet = "10.77.101.0/24".parse().unwrap();
        assert_eq!(s.bridge_address(), Ipv4Addr::new(10, 77, 101, 1));
        assert_eq!(s.node_address(1).unwrap(), Ipv4Addr::new(10, 77, 101, 11));
        assert!(s.node_address(0).is_err());
        assert!(s.node_address(usize::MAX).is_err());
        assert!(s.node_address(MAX_LOCAL_NODES).is_ok());
        let small: Subnet = "10.77.0.0/28".parse().unwrap();
        assert!(small.node_address(4).is_err());
        for bad in [
            "10.77.0.1/24",
            "10.77.0.0",
            "10.77.0.0/33",
            "x/24",
            "10.77.0.0/4",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_symmetric_in_prefix() {
        let s: Subnet = "10.77.5.0/24".parse().unwrap();
        assert!(s.overlaps(Ipv4Addr::new(10, 1, 2, 3), 8));
        assert!(s.overlaps(Ipv4Addr::new(10, 77, 5, 200), 32));
        assert!(!s.overlaps(Ipv4Addr::new(10, 77, 6, 1), 24));
    }
}
