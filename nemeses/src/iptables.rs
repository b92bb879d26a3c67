//! Our own iptables chains: how partitions and loss drop traffic and latency queues it,
//! and how heal removes exactly what we added.
//!
//! Each fault owns one chain (`DISTEST-PARTITION`, `DISTEST-LOSS` in the filter table,
//! hooked first into INPUT; `DISTEST-LATENCY` in the mangle table, hooked first into INPUT
//! and OUTPUT), with every rule and hook tagged `-m comment --comment distest`. Healing one
//! fault flushes and deletes only its chain, so ending a partition leaves a running loss
//! fault alone, and nothing of the node's own firewall is touched. Latency lives in the
//! mangle table because mangle runs before filter on the same hook: a queued packet the
//! delayer accepts still meets the partition and loss rules afterwards (an accept from the
//! queue ends the packet's walk through the table it was queued in). Addresses pick the
//! tool: `iptables` for IPv4 peers, `ip6tables` for IPv6.

use crate::cluster::{Cluster, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::node::NodeShell;
use crate::preflight::Lack;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The comment on every rule we add, so `distest env down` and humans can find them.
pub const RULE_COMMENT: &str = "distest";

/// Deleting a hook is retried at most this often, in case it was added twice.
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

    pub(crate) fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Which end of a packet a rule matches a peer on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Packets the peer sent (`-s`).
    From,
    /// Packets sent to the peer (`-d`).
    To,
}

/// One rule: packets from or to `peer`, with extra matches (`-m statistic ...`) if any,
/// get `action` (`DROP`, `NFQUEUE ...`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub(crate) peer: IpAddr,
    pub(crate) direction: Direction,
    pub(crate) matches: String,
    pub(crate) action: String,
}

impl Rule {
    /// Drops packets from `source` (that `matches`, if not empty).
    pub(crate) fn drop_from(source: IpAddr, matches: impl Into<String>) -> Rule {
        Rule {
            peer: source,
            direction: Direction::From,
            matches: matches.into(),
            action: "DROP".to_string(),
        }
    }

    /// Sends packets from or to `peer` to NFQUEUE `queue`; with no process bound to the
    /// queue they pass (`--queue-bypass`), so a dead delayer never cuts the link.
    pub(crate) fn queue(peer: IpAddr, direction: Direction, queue: u16) -> Rule {
        Rule {
            peer,
            direction,
            matches: String::new(),
            action: format!("NFQUEUE --queue-num {queue} --queue-bypass"),
        }
    }
}

/// A chain of ours: its name, its table, and the built-in chains it is hooked into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) name: &'static str,
    table: &'static str,
    hooks: &'static [&'static str],
}

pub(crate) const PARTITION: Chain = Chain {
    name: "DISTEST-PARTITION",
    table: "filter",
    hooks: &["INPUT"],
};
pub(crate) const LOSS: Chain = Chain {
    name: "DISTEST-LOSS",
    table: "filter",
    hooks: &["INPUT"],
};
pub(crate) const LATENCY: Chain = Chain {
    name: "DISTEST-LATENCY",
    table: "mangle",
    hooks: &["INPUT", "OUTPUT"],
};
/// Created and deleted in one command by preflights (does iptables take our rules?);
/// listed so that a preflight killed half-way is cleaned up too.
pub(crate) const FILTER_PROBE: Chain = Chain {
    name: "DISTEST-PROBE",
    table: "filter",
    hooks: &[],
};
pub(crate) const MANGLE_PROBE: Chain = Chain {
    name: "DISTEST-PROBE",
    table: "mangle",
    hooks: &[],
};

impl Chain {
    /// `iptables -w 5 [-t TABLE]`: the filter table is named by omission, which keeps the
    /// commands of partition and loss what they always were.
    fn tool(self, family: Family) -> String {
        match self.table {
            "filter" => format!("{} -w 5", family.tool()),
            table => format!("{} -w 5 -t {table}", family.tool()),
        }
    }

    fn hook(self, family: Family, action: &str, builtin: &str) -> String {
        format!(
            "{} {action} {builtin} -m comment --comment {RULE_COMMENT} -j {}",
            self.tool(family),
            self.name
        )
    }

    /// Shell command that empties (creating if needed) the chain, hooks it first into its
    /// built-in chains once, and appends `rules`, all of one family.
    pub(crate) fn install_command(self, family: Family, rules: &[Rule]) -> String {
        let tool = self.tool(family);
        let chain = self.name;
        let mut parts = vec![
            format!("{{ {tool} -N {chain} 2>/dev/null || true; }}"),
            format!("{tool} -F {chain}"),
        ];
        for builtin in self.hooks {
            parts.push(format!(
                "{{ {} 2>/dev/null || {}; }}",
                self.hook(family, "-C", builtin),
                self.hook(family, "-I", builtin).replacen(
                    &format!("-I {builtin}"),
                    &format!("-I {builtin} 1"),
                    1
                )
            ));
        }
        for rule in rules {
            let matches = if rule.matches.is_empty() {
                String::new()
            } else {
                format!(" {}", rule.matches)
            };
            let side = match rule.direction {
                Direction::From => "-s",
                Direction::To => "-d",
            };
            parts.push(format!(
                "{tool} -A {chain} {side} {}{matches} -m comment --comment {RULE_COMMENT} -j {}",
                rule.peer, rule.action
            ));
        }
        parts.join(" && ")
    }

    /// Shell command that unhooks, flushes and deletes the chain; succeeds (doing nothing)
    /// when the chain does not exist, which makes heal idempotent.
    pub(crate) fn remove_command(self, family: Family) -> String {
        let tool = self.tool(family);
        let chain = self.name;
        let unhook: String = self
            .hooks
            .iter()
            .map(|builtin| {
                format!(
                    "i=0; while [ $i -lt {MAX_HOOKS} ] && {} 2>/dev/null; do i=$((i+1)); done; ",
                    self.hook(family, "-D", builtin)
                )
            })
            .collect();
        format!(
            "if {tool} -n -L {chain} >/dev/null 2>&1; then {unhook}{tool} -F {chain} && {tool} -X {chain}; fi"
        )
    }

    /// Shell command that checks the chain's table takes a rule like ours (`matches`,
    /// then our comment, then `-j action`): creates the chain, adds the rule, and removes
    /// both whatever happened; exits non-zero with iptables' complaint when refused.
    pub(crate) fn probe_command(self, family: Family, matches: &str, action: &str) -> String {
        let tool = self.tool(family);
        let chain = self.name;
        let matches = if matches.is_empty() {
            String::new()
        } else {
            format!(" {matches}")
        };
        format!(
            "{remove}; {tool} -N {chain} && {tool} -A {chain}{matches} -m comment --comment {RULE_COMMENT} -j {action}; rc=$?; {remove}; exit $rc",
            remove = self.remove_command(family)
        )
    }

    /// [`probe_command`](Self::probe_command) on `node` for each family of `cluster`'s
    /// addresses; what is missing is a [`Lack`] naming `need`.
    pub(crate) fn probe(
        self,
        node: &dyn NodeShell,
        cluster: &Cluster,
        matches: &str,
        action: &str,
    ) -> Result<(), Lack> {
        let families: BTreeSet<Family> = cluster
            .all()
            .iter()
            .map(|n| Family::of(n.address()))
            .collect();
        for family in families {
            let out = node.exec(
                &self.probe_command(family, matches, action),
                COMMAND_TIMEOUT,
            )?;
            if !out.success() {
                let table = match self.table {
                    "filter" => String::new(),
                    table => format!(" ({table} table)"),
                };
                return Err(Lack::new(
                    format!("{} taking `-j {action}` rules{table}", family.tool()),
                    crate::preflight::said(&out),
                ));
            }
        }
        Ok(())
    }

    /// Replaces the chain's rules on `node` with `rules`. Families are recorded by the
    /// caller before this runs, since a failure may leave a half-installed chain that
    /// heal must still remove.
    pub(crate) fn install(self, node: &dyn NodeShell, rules: &[Rule]) -> Result<(), NemesisError> {
        for family in families(rules) {
            let of_family: Vec<Rule> = rules
                .iter()
                .filter(|r| Family::of(r.peer) == family)
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
        plans: &BTreeMap<String, Vec<Rule>>,
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
pub(crate) const ALL_CHAINS: [Chain; 5] = [PARTITION, LOSS, LATENCY, FILTER_PROBE, MANGLE_PROBE];

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

/// The address families `rules` need.
pub(crate) fn families(rules: &[Rule]) -> BTreeSet<Family> {
    rules.iter().map(|r| Family::of(r.peer)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hooks_the_chain_once_and_tags_every_rule() {
        let rules = [Rule::drop_from(
            "10.0.0.2".parse().unwrap(),
            "-m statistic --mode random --probability 0.2",
        )];
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
    fn latency_queues_both_directions_in_the_mangle_table() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let rules = [
            Rule::queue(peer, Direction::From, 7),
            Rule::queue(peer, Direction::To, 7),
        ];
        let cmd = LATENCY.install_command(Family::V4, &rules);
        for builtin in ["INPUT", "OUTPUT"] {
            assert!(
                cmd.contains(&format!("iptables -w 5 -t mangle -I {builtin} 1 -m comment --comment distest -j DISTEST-LATENCY")),
                "{cmd}"
            );
        }
        assert!(cmd.contains("-A DISTEST-LATENCY -s 10.0.0.2 -m comment --comment distest -j NFQUEUE --queue-num 7 --queue-bypass"), "{cmd}");
        assert!(cmd.ends_with("-A DISTEST-LATENCY -d 10.0.0.2 -m comment --comment distest -j NFQUEUE --queue-num 7 --queue-bypass"), "{cmd}");
        let remove = LATENCY.remove_command(Family::V4);
        for builtin in ["INPUT", "OUTPUT"] {
            assert!(
                remove.contains(&format!("-t mangle -D {builtin} -m comment")),
                "{remove}"
            );
        }
        assert!(remove.ends_with("iptables -w 5 -t mangle -F DISTEST-LATENCY && iptables -w 5 -t mangle -X DISTEST-LATENCY; fi"), "{remove}");
    }

    #[test]
    fn the_probe_removes_its_chain_whatever_happened() {
        let cmd = MANGLE_PROBE.probe_command(Family::V4, "", "NFQUEUE --queue-num 7");
        let remove = MANGLE_PROBE.remove_command(Family::V4);
        assert!(cmd.starts_with(&remove), "{cmd}");
        assert!(
            cmd.ends_with(&format!("rc=$?; {remove}; exit $rc")),
            "{cmd}"
        );
        assert!(
            cmd.contains(
                "-t mangle -A DISTEST-PROBE -m comment --comment distest -j NFQUEUE --queue-num 7;"
            ),
            "{cmd}"
        );
        let cmd = FILTER_PROBE.probe_command(
            Family::V6,
            "-m statistic --mode random --probability 0.5",
            "DROP",
        );
        assert!(cmd.contains("ip6tables -w 5 -A DISTEST-PROBE -m statistic --mode random --probability 0.5 -m comment --comment distest -j DROP;"), "{cmd}");
    }

    #[test]
    fn ipv6_peers_use_ip6tables() {
        let rules = [Rule::drop_from("fd00::2".parse().unwrap(), "")];
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
    fn clearing_removes_every_chain_in_both_families_where_installed() {
        let cmd = clear_command();
        for family in [Family::V4, Family::V6] {
            for chain in ALL_CHAINS {
                assert!(cmd.contains(&chain.remove_command(family)));
            }
        }
        assert!(cmd.contains("! command -v ip6tables >/dev/null 2>&1 ||"));
    }

    #[test]
    fn remove_only_touches_its_own_chain() {
        let cmd = PARTITION.remove_command(Family::V4);
        assert!(cmd.contains("-F DISTEST-PARTITION && iptables -w 5 -X DISTEST-PARTITION"));
        assert!(!cmd.contains("LOSS"));
        assert!(!cmd.contains("-F INPUT"));
    }
}
