//! Templates in target files: `{node}`, `{ip}`, `{data_dir}`, `{set.KEY}`... replaced by
//! each node's (or the cluster's) values before a command runs.
//!
//! A `{` followed by a name (`[A-Za-z_][A-Za-z0-9_.-]*`) and `}` is a template, and an
//! unknown name is an error: that is what catches `{data-dir}` or `{ip_addr}` before
//! anything is provisioned. Every other brace is left alone, so shell and awk code such
//! as `awk '{print $1}'`, `{ a; b; }` or `find -exec rm {} +` needs no escaping. A literal
//! brace around a name (a shell's `${HOME}`) is written doubled: `${{HOME}}`.
//!
//! Values are inserted as they are, not shell-quoted: distest's own values (names,
//! addresses, paths it checked) never need quoting, and `{set.KEY}` is the user's own
//! input, quoted by the file's author where it has to be.

use std::collections::BTreeMap;
use std::fmt;

/// A template name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Var {
    /// The node's name, `n1`...
    Node,
    /// The node's number, `1`...
    Index,
    /// The node's address.
    Ip,
    /// The target file's folder, as seen where the command runs.
    Dir,
    /// The node's data directory for this target (wiped at teardown).
    DataDir,
    /// The node's log directory (collected into the run directory).
    LogDir,
    /// Every node's name, space-separated.
    Nodes,
    /// Every node's address, space-separated.
    Ips,
    /// `n1=IP,n2=IP,...`
    Peers,
    /// The first node's name.
    Primary,
    /// The first node's address.
    PrimaryIp,
    /// The value of `--set KEY=VALUE`.
    Set(String),
}

/// Every fixed template name with its variable, in the order the docs list them.
const FIXED: [(&str, Var); 11] = [
    ("node", Var::Node),
    ("index", Var::Index),
    ("ip", Var::Ip),
    ("dir", Var::Dir),
    ("data_dir", Var::DataDir),
    ("log_dir", Var::LogDir),
    ("nodes", Var::Nodes),
    ("ips", Var::Ips),
    ("peers", Var::Peers),
    ("primary", Var::Primary),
    ("primary_ip", Var::PrimaryIp),
];

impl Var {
    fn parse(name: &str) -> Option<Var> {
        if let Some((_, var)) = FIXED.iter().find(|(n, _)| *n == name) {
            return Some(var.clone());
        }
        let key = name.strip_prefix("set.")?;
        is_setting_key(key).then(|| Var::Set(key.to_string()))
    }

    /// True for names whose value belongs to one node; they have no value on the control
    /// node, where the client runs.
    pub fn is_per_node(&self) -> bool {
        matches!(
            self,
            Var::Node | Var::Index | Var::Ip | Var::DataDir | Var::LogDir
        )
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Set(key) => write!(f, "{{set.{key}}}"),
            fixed => {
                let name = FIXED
                    .iter()
                    .find(|(_, v)| v == fixed)
                    .map_or("?", |(n, _)| n);
                write!(f, "{{{name}}}")
            }
        }
    }
}

/// A `--set` key a template may name: letters, digits, `_` and `-`.
pub fn is_setting_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A template and the byte offset of its `{` in the source string.
    Var(Var, usize),
}

/// A parsed template string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template string is wrong, at which byte of the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Where a template is used: commands on a node know that node; the client command runs
/// on the control node and knows only the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Node,
    ControlNode,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.-".contains(&b)
}

impl Template {
    /// Parses `source` for use in `scope`; unknown names, and per-node names used on the
    /// control node, are errors.
    pub fn parse(source: &str, scope: Scope) -> Result<Template, TemplateError> {
        let bytes = source.as_bytes();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        let mut literal_start = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push_str(&source[literal_start..i]);
                    text.push('{');
                    i += 2;
                    literal_start = i;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push_str(&source[literal_start..i]);
                    text.push('}');
                    i += 2;
                    literal_start = i;
                }
                b'{' if bytes.get(i + 1).is_some_and(|&b| is_name_start(b)) => {
                    let end = bytes[i + 1..]
                        .iter()
                        .position(|&b| !is_name_byte(b))
                        .map_or(bytes.len(), |p| i + 1 + p);
                    if bytes.get(end) != Some(&b'}') {
                        // `{a,b}`, `{print $1}`: not a template, a literal brace.
                        i += 1;
                        continue;
                    }
                    let name = &source[i + 1..end];
                    let var = Var::parse(name).ok_or_else(|| TemplateError {
                        offset: i,
                        message: unknown_name_message(name),
                    })?;
                    if scope == Scope::ControlNode && var.is_per_node() {
                        return Err(TemplateError {
                            offset: i,
                            message: format!(
                                "{var} has no value in [client] command, which runs on the control node; the client learns its node and address from the open message"
                            ),
                        });
                    }
                    text.push_str(&source[literal_start..i]);
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(var, i));
                    i = end + 1;
                    literal_start = i;
                }
                _ => i += 1,
            }
        }
        text.push_str(&source[literal_start..]);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The templates used, with the byte offset of each in the source string.
    pub fn vars(&self) -> impl Iterator<Item = (&Var, usize)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v, offset) => Some((v, *offset)),
            Piece::Text(_) => None,
        })
    }

    /// True when the template is only whitespace.
    pub fn is_blank(&self) -> bool {
        self.pieces
            .iter()
            .all(|p| matches!(p, Piece::Text(t) if t.trim().is_empty()))
    }

    /// Replaces every template by its value in `values`.
    pub fn expand(&self, values: &Values<'_>) -> Result<String, ExpandError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(var, _) => out.push_str(&values.get(var)?),
            }
        }
        Ok(out)
    }
}

fn unknown_name_message(name: &str) -> String {
    let hint = if let Some(key) = name.strip_prefix("set.") {
        format!("{{set.{key}}} names a setting, whose key may hold only letters, digits, _ and -")
    } else {
        format!(
            "the templates are {}, {{set.KEY}}; a literal brace is written doubled, as in ${{{{{name}}}}}",
            FIXED.map(|(n, _)| format!("{{{n}}}")).join(", ")
        )
    };
    format!("unknown template {{{name}}}; {hint}")
}

/// A template with no value where it was expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("{0} has no value outside a node's commands")]
    NoNode(Var),
    #[error("{{set.{0}}} is used but no --set {0}=VALUE was given; pass it on the command line")]
    NoSetting(String),
}

/// One node of the cluster as templates see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeValues {
    pub name: String,
    pub ip: String,
    /// The node's data directory for this target.
    pub data_dir: String,
    pub log_dir: String,
    /// The target file's folder on this node.
    pub dir: String,
}

/// Everything templates can name: the cluster, the settings, and — for commands on a
/// node — which node.
#[derive(Clone, Copy, Debug)]
pub struct Values<'a> {
    pub nodes: &'a [NodeValues],
    pub settings: &'a BTreeMap<String, String>,
    /// The node a command runs on (index into `nodes`); `None` on the control node.
    pub node: Option<usize>,
    /// `{dir}` on the control node.
    pub control_dir: &'a str,
    /// For `[membership]` commands: the node being added or removed. `{node}`, `{index}`
    /// and `{ip}` then name it, and `{primary}`, `{primary_ip}` the node the command runs
    /// on (`node`); paths stay those of the node the command runs on.
    pub member: Option<usize>,
}

impl Values<'_> {
    fn get(&self, var: &Var) -> Result<String, ExpandError> {
        let at = |index: Option<usize>| {
            index
                .and_then(|i| self.nodes.get(i).map(|n| (i, n)))
                .ok_or_else(|| ExpandError::NoNode(var.clone()))
        };
        let node = || at(self.node);
        let who = || at(self.member.or(self.node));
        let join = |f: &dyn Fn(&NodeValues) -> String, sep: &str| {
            self.nodes.iter().map(f).collect::<Vec<_>>().join(sep)
        };
        let primary = || match self.member {
            Some(_) => node().map(|(_, n)| n),
            None => self
                .nodes
                .first()
                .ok_or_else(|| ExpandError::NoNode(var.clone())),
        };
        Ok(match var {
            Var::Node => who()?.1.name.clone(),
            Var::Index => (who()?.0 + 1).to_string(),
            Var::Ip => who()?.1.ip.clone(),
            Var::DataDir => node()?.1.data_dir.clone(),
            Var::LogDir => node()?.1.log_dir.clone(),
            Var::Dir => match self.node {
                Some(_) => node()?.1.dir.clone(),
                None => self.control_dir.to_string(),
            },
            Var::Nodes => join(&|n| n.name.clone(), " "),
            Var::Ips => join(&|n| n.ip.clone(), " "),
            Var::Peers => join(&|n| format!("{}={}", n.name, n.ip), ","),
            Var::Primary => primary()?.name.clone(),
            Var::PrimaryIp => primary()?.ip.clone(),
            Var::Set(key) => self
                .settings
                .get(key)
                .cloned()
                .ok_or_else(|| ExpandError::NoSetting(key.clone()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeValues> {
        (1..=3)
            .map(|i| NodeValues {
                name: format!("n{i}"),
                ip: format!("10.77.232.{}", 10 + i),
                data_dir: format!("/var/dt/n{i}/data/t"),
                log_dir: format!("/var/dt/n{i}/logs"),
                dir: "/srv/target".into(),
            })
            .collect()
    }

    fn expand(source: &str, node: Option<usize>, settings: &[(&str, &str)]) -> String {
        let scope = if node.is_some() {
            Scope::Node
        } else {
            Scope::ControlNode
        };
        let settings: BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let nodes = nodes();
        Template::parse(source, scope)
            .unwrap()
            .expand(&Values {
                nodes: &nodes,
                settings: &settings,
                node,
                control_dir: "/home/me/target",
                member: None,
            })
            .unwrap()
    }

    #[test]
    fn every_name_expands_to_its_value() {
        let all = "{node} {index} {ip} {dir} {data_dir} {log_dir} | {nodes} | {ips} | {peers} | {primary} {primary_ip} {set.mode}";
        assert_eq!(
            expand(all, Some(1), &[("mode", "fast")]),
            "n2 2 10.77.232.12 /srv/target /var/dt/n2/data/t /var/dt/n2/logs | n1 n2 n3 | 10.77.232.11 10.77.232.12 10.77.232.13 | n1=10.77.232.11,n2=10.77.232.12,n3=10.77.232.13 | n1 10.77.232.11 fast"
        );
    }

    #[test]
    fn membership_commands_name_the_member_and_run_on_the_primary() {
        let nodes = nodes();
        let t = Template::parse(
            "{primary} {primary_ip} {node} {index} {ip} {data_dir}",
            Scope::Node,
        )
        .unwrap();
        let out = t
            .expand(&Values {
                nodes: &nodes,
                settings: &BTreeMap::new(),
                node: Some(1),
                control_dir: "/",
                member: Some(2),
            })
            .unwrap();
        assert_eq!(out, "n2 10.77.232.12 n3 3 10.77.232.13 /var/dt/n2/data/t");
    }

    #[test]
    fn dir_on_the_control_node_is_the_local_folder() {
        assert_eq!(
            expand("cd {dir} && ./c {primary_ip}", None, &[]),
            "cd /home/me/target && ./c 10.77.232.11"
        );
    }

    #[test]
    fn shell_and_awk_braces_pass_through() {
        for s in [
            "awk '{print $1}'",
            "f() { echo hi; }; f",
            "find . -exec rm {} +",
            "echo {a,b}",
            "echo {1..3}",
            "x = { }",
            "{",
            "}",
            "{ ",
            "{-x}",
        ] {
            assert_eq!(expand(s, Some(0), &[]), s, "{s}");
        }
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(expand("echo ${{HOME}}", Some(0), &[]), "echo ${HOME}");
        assert_eq!(expand("{{node}}", Some(0), &[]), "{node}");
        assert_eq!(expand("{{{node}}}", Some(0), &[]), "{n1}");
    }

    #[test]
    fn unknown_names_are_errors_at_their_offset() {
        let err = Template::parse("redis --dir {data-dir}", Scope::Node).unwrap_err();
        assert_eq!(err.offset, 12);
        assert!(
            err.message.contains("unknown template {data-dir}"),
            "{err:?}"
        );
        assert!(
            err.message.contains("{data_dir}"),
            "lists the valid ones: {err:?}"
        );
        let err = Template::parse("echo ${HOME}", Scope::Node).unwrap_err();
        assert!(err.message.contains("${{HOME}}"), "{err:?}");
        let err = Template::parse("{set.}", Scope::Node).unwrap_err();
        assert!(err.message.contains("unknown template {set.}"), "{err:?}");
        let err = Template::parse("{set.a.b}", Scope::Node).unwrap_err();
        assert!(err.message.contains("letters, digits"), "{err:?}");
    }

    #[test]
    fn per_node_names_are_refused_on_the_control_node() {
        for name in ["node", "index", "ip", "data_dir", "log_dir"] {
            let err = Template::parse(&format!("run {{{name}}}"), Scope::ControlNode).unwrap_err();
            assert_eq!(err.offset, 4);
            assert!(err.message.contains("control node"), "{err:?}");
        }
        for name in [
            "dir",
            "nodes",
            "ips",
            "peers",
            "primary",
            "primary_ip",
            "set.k",
        ] {
            Template::parse(&format!("run {{{name}}}"), Scope::ControlNode).unwrap();
        }
    }

    #[test]
    fn a_missing_setting_is_an_expand_error_naming_the_flag() {
        let nodes = nodes();
        let err = Template::parse("x {set.isolation}", Scope::Node)
            .unwrap()
            .expand(&Values {
                nodes: &nodes,
                settings: &BTreeMap::new(),
                node: Some(0),
                control_dir: "/",
                member: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("--set isolation=VALUE"), "{err}");
    }

    #[test]
    fn vars_reports_each_use_with_its_offset() {
        let t = Template::parse("{ip}:{set.port} {ip}", Scope::Node).unwrap();
        let vars: Vec<(Var, usize)> = t.vars().map(|(v, o)| (v.clone(), o)).collect();
        assert_eq!(
            vars,
            vec![(Var::Ip, 0), (Var::Set("port".into()), 5), (Var::Ip, 16)]
        );
        assert_eq!(Var::Set("port".into()).to_string(), "{set.port}");
        assert_eq!(Var::PrimaryIp.to_string(), "{primary_ip}");
    }

    #[test]
    fn blank_templates_are_recognised() {
        assert!(Template::parse("  \n", Scope::Node).unwrap().is_blank());
        assert!(!Template::parse(" {ip} ", Scope::Node).unwrap().is_blank());
    }

    proptest::proptest! {
        /// Any string either parses or names an offset inside it; a parsed string without
        /// templates expands to itself with doubled braces undoubled.
        #[test]
        fn parse_never_panics_and_plain_text_round_trips(s in "[a-z{}$ .]{0,40}") {
            match Template::parse(&s, Scope::Node) {
                Err(e) => proptest::prop_assert!(e.offset < s.len()),
                Ok(t) => {
                    if t.vars().next().is_none() {
                        let nodes = nodes();
                        let out = t.expand(&Values { nodes: &nodes, settings: &BTreeMap::new(), node: Some(0), control_dir: "/", member: None }).unwrap();
                        proptest::prop_assert!(out.len() <= s.len());
                    }
                }
            }
        }
    }
}
