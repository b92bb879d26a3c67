//! Our own iptables chains: how partitions and packet loss drop traffic, and how heal
//! removes exactly what we added.
//!
//! Each fault owns one chain (`DISTEST-PARTITION`, `DISTEST-LOSS`) hooked first into
//! INPUT, with every rule and the hook tagged `-m comment --comment distest`. Healing one
//! fault flushes and deletes only its chain, so ending a partition leaves a running loss
//! fault alone, and nothing of the node's own firewall is touched. Addresses pick the
//! tool: `iptables` for IPv4 peers, `ip6tables` for IPv6.

use crate::cluster::{Cluster, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::node::NodeShell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The comment on every rule we add, so `distest env down` and humans can find them.
pub const RULE_COMMENT: &str = "distest";

/// Deleting the INPUT hook is retried at most this often, in case it was added twice.
const MAX_HOOKS: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// One rule: drop packets from `source`, with extra matches (`-m statistic ...`) if any.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DropRule {
    pub(crate) source: IpAddr,
    pub(crate) matches: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain(pub(crate) &'static str);

pub(crate) const PARTITION: Chain = Chain("DISTEST-PARTITION");
pub(crate) const LOSS: Chain = Chain("DISTEST-LOSS");

impl Chain {
    fn hook(self, family: Family, action: &str) -> String {
        format!(
            "{} -w 5 {action} INPUT -m comment --comment {RULE_COMMENT} -j {}",
            family.tool(),
            self.0
        )
    }

    /// Shell command that empties (creating if needed) the chain, hooks it first into
    /// INPUT once, and appends `rules`, all of one family.
    pub(crate) fn install_command(self, family: Family, rules: &[DropRule]) -> String {
        let tool = family.tool();
        let chain = self.0;
        let mut parts = vec![
            format!("{{ {tool} -w 5 -N {chain} 2>/dev/null || true; }}"),
            format!("{tool} -w 5 -F {chain}"),
            format!(
                "{{ {} 2>/dev/null || {}; }}",
                self.hook(family, "-C"),
                self.hook(family, "-I")
                    .replacen("-I INPUT", "-I INPUT 1", 1)
            ),
        ];
        for rule in rules {
            let matches = if rule.matches.is_empty() {
                String::new()
            } else {
                format!(" {}", rule.matches)
            };
            parts.push(format!(
                "{tool} -w 5 -A {chain} -s {}{matches} -m comment --comment {RULE_COMMENT} -j DROP",
                rule.source
            ));
        }
        parts.join(" && ")
    }

    /// Shell command that unhooks, flushes and deletes the chain; succeeds (doing nothing)
    /// when the chain does not exist, which makes heal idempotent.
    pub(crate) fn remove_command(self, family: Family) -> String {
        let tool = family.tool();
        let chain = self.0;
        format!(
            "if {tool} -w 5 -n -L {chain} >/dev/null 2>&1; then i=0; \
             while [ $i -lt {MAX_HOOKS} ] && {} 2>/dev/null; do i=$((i+1)); done; \
             {tool} -w 5 -F {chain} && {tool} -w 5 -X {chain}; fi",
            self.hook(family, "-D")
        )
    }

    /// Replaces the chain's rules on `node` with `rules`; returns the families it touched.
    /// Families are recorded by the caller before this runs, since a failure may leave a
    /// half-installed chain that heal must still remove.
    pub(crate) fn install(
        self,
        node: &dyn NodeShell,
        rules: &[DropRule],
    ) -> Result<(), NemesisError> {
        for family in families(rules) {
            let of_family: Vec<DropRule> = rules
                .iter()
                .filter(|r| Family::of(r.source) == family)
                .cloned()
                .collect();
            node.exec_ok(&self.install_command(family, &of_family), COMMAND_TIMEOUT)?;
        }
        Ok(())
    }

    /// Removes the chain from `node` for each of `families`.
    pub(crate) fn remove(
        self,
        node: &dyn NodeShell,
        families: &BTreeSet<Family>,
    ) -> Result<(), NemesisError> {
        for family in families {
            node.exec_ok(&self.remove_command(*family), COMMAND_TIMEOUT)?;
        }
        Ok(())
    }
}

/// One chain on many nodes, and the bookkeeping heal needs: which nodes we may have
/// changed, with which address families. An entry is recorded before the install runs
/// (a failed install may leave a half-filled chain) and dropped only once removal
/// succeeded, so a failed heal is retried by the next one.
pub(crate) struct ChainOnNodes {
    chain: Chain,
    touched: BTreeMap<String, BTreeSet<Family>>,
}

impl ChainOnNodes {
    pub(crate) fn new(chain: Chain) -> ChainOnNodes {
        ChainOnNodes {
            chain,
            touched: BTreeMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// Installs each node's rules (replacing what the chain held), in parallel.
    pub(crate) fn install(
        &mut self,
        cluster: &Cluster,
        f: &str,
        plans: &BTreeMap<String, Vec<DropRule>>,
    ) -> Result<(), NemesisError> {
        for (node, rules) in plans {
            self.touched
                .entry(node.clone())
                .or_default()
                .extend(families(rules));
        }
        let names: Vec<String> = plans.keys().cloned().collect();
        let chain = self.chain;
        let outcomes = cluster.each(f, &names, |node| chain.install(node, &plans[node.name()]));
        NemesisError::collect(f, outcomes).map(|_| ())
    }

    /// Removes the chain from every node it may be on; returns the nodes healed.
    pub(crate) fn remove_all(
        &mut self,
        cluster: &Cluster,
        f: &str,
    ) -> Result<Vec<String>, NemesisError> {
        let names: Vec<String> = self.touched.keys().cloned().collect();
        let touched = &self.touched;
        let chain = self.chain;
        let outcomes = cluster.each(f, &names, |node| chain.remove(node, &touched[node.name()]));
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.touched.remove(node);
            }
        }
        let healed = NemesisError::collect(f, outcomes)?;
        Ok(healed.into_iter().map(|(node, ())| node).collect())
    }
}

/// Every chain a nemesis may install.
pub(crate) const ALL_CHAINS: [Chain; 2] = [PARTITION, LOSS];

/// Shell command that removes every chain of ours on a node, for each family whose tool
/// is installed.
pub(crate) fn clear_command() -> String {
    let mut parts = Vec::new();
    for family in [Family::V4, Family::V6] {
        for chain in ALL_CHAINS {
            parts.push(format!(
                "{{ ! command -v {} >/dev/null 2>&1 || {{ {}; }}; }}",
                family.tool(),
                chain.remove_command(family)
            ));
        }
    }
    parts.join(" && ")
}

/// Removes the iptables chains an earlier run may have left on `nodes` (a control node
/// killed before its final heal), so a new run does not start partitioned. Our chains are
/// found by name (`DISTEST-*`); nothing else is touched. Local namespace nodes do not need
/// it (deleting a namespace deletes its rules); SSH nodes do. Returns each node's outcome.
pub fn clear_leftovers(
    nodes: &[std::sync::Arc<dyn NodeShell>],
) -> Vec<(String, Result<(), NemesisError>)> {
    let cluster = Cluster::new(nodes.to_vec());
    let command = clear_command();
    cluster.each("clear-leftovers", &cluster.names(), |node| {
        node.exec_ok(&command, COMMAND_TIMEOUT)
            .map(|_| ())
            .map_err(NemesisError::from)
    })
}

/// The address families `rules` need.
pub(crate) fn families(rules: &[DropRule]) -> BTreeSet<Family> {
    rules.iter().map(|r| Family::of(r.source)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hooks_the_chain_once_and_tags_every_rule() {
        let rules = [DropRule {
            source: "10.0.0.2".parse().unwrap(),
            matches: "-m statistic --mode random --probability 0.2".to_string(),
        }];
        let cmd = LOSS.install_command(Family::V4, &rules);
        assert!(cmd.contains("iptables -w 5 -F DISTEST-LOSS"), "{cmd}");
        assert!(
            cmd.contains("iptables -w 5 -C INPUT -m comment --comment distest -j DISTEST-LOSS 2>/dev/null || iptables -w 5 -I INPUT 1 -m comment --comment distest -j DISTEST-LOSS"),
            "{cmd}"
        );
        assert!(cmd.ends_with(
            "iptables -w 5 -A DISTEST-LOSS -s 10.0.0.2 -m statistic --mode random --probability 0.2 -m comment --comment distest -j DROP"
        ), "{cmd}");
    }

    #[test]
    fn ipv6_peers_use_ip6tables() {
        let rules = [DropRule {
            source: "fd00::2".parse().unwrap(),
            matches: String::new(),
        }];
        let cmd = PARTITION.install_command(Family::V6, &rules);
        assert!(
            cmd.contains("ip6tables -w 5 -A DISTEST-PARTITION -s fd00::2 -m comment"),
            "{cmd}"
        );
        assert!(PARTITION
            .remove_command(Family::V6)
            .starts_with("if ip6tables"));
    }

    #[test]
    fn clearing_leftovers_removes_both_chains_in_both_families_where_installed() {
        let node = std::sync::Arc::new(crate::fake::FakeNode::ok(1));
        let outcomes = clear_leftovers(&[node.clone() as std::sync::Arc<dyn NodeShell>]);
        assert!(outcomes[0].1.is_ok());
        let commands = node.commands();
        assert_eq!(commands.len(), 1);
        for family in [Family::V4, Family::V6] {
            for chain in ALL_CHAINS {
                assert!(commands[0].contains(&chain.remove_command(family)));
            }
        }
        assert!(commands[0].contains("! command -v ip6tables >/dev/null 2>&1 ||"));
    }

    #[test]
    fn remove_only_touches_its_own_chain() {
        let cmd = PARTITION.remove_command(Family::V4);
        assert!(cmd.contains("-F DISTEST-PARTITION && iptables -w 5 -X DISTEST-PARTITION"));
        assert!(!cmd.contains("LOSS"));
        assert!(!cmd.contains("-F INPUT"));
    }
}
