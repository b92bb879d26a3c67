//! The target file: what a user writes to describe their system (`target.toml`), parsed
//! and checked completely before anything is provisioned.
//!
//! Every mistake is reported as one sentence naming the file, line and column: a TOML
//! syntax error, a key distest does not know (typos must not be ignored: a misspelt
//! `ready` would silently start clients against a system that is not up), a template
//! name that does not exist or has no value where it is used, a missing command. The
//! format is documented in `docs/targets.md`; its names are a contract with users.

use super::template::{Scope, Template, TemplateError, Var};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// How long a daemon may take to become ready when the file does not say.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `ready_timeout_s` accepted: an hour is already far past any sane start.
const MAX_READY_TIMEOUT_S: f64 = 3600.0;
/// Longest target and daemon name (they become file and directory names).
const MAX_NAME_LEN: usize = 40;

/// The workloads a file target's client can speak (the ops of each are in the docs).
pub fn file_workloads() -> &'static [&'static str] {
    distest_workloads::WORKLOADS
}

/// Why a target file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("could not read the target file {path}: {message}; check the path given to --target")]
    Read { path: String, message: String },
    #[error("{path} line {line}, column {column}: {message}")]
    At {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A position in the file, 1-based, for messages about things found later (a setting a
/// template needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A template and where its string starts in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub template: Template,
    pub at: Position,
}

/// One `[[daemon]]`: a long-running process distest starts, logs, kills, pauses and
/// clock-skews on every node.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonDef {
    pub name: String,
    /// Runs in the foreground under `sh -c`; its stdout and stderr are the daemon's log.
    pub start: Located,
    /// Polled on the node until it exits 0.
    pub ready: Option<Located>,
    /// Polled from the control node until `{ip}:port` accepts a connection.
    pub ready_tcp: Option<u16>,
    pub ready_timeout: Duration,
    /// Extra files collected with the logs (paths on the node).
    pub log_files: Vec<Located>,
}

/// `[membership]`: commands that remove a node from the cluster and add it back. Both
/// run on the primary (another member if the primary is the node concerned); in them
/// `{node}`, `{index}` and `{ip}` name the node being added or removed, `{primary}` and
/// `{primary_ip}` the node the command runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    pub add: Located,
    pub remove: Located,
}

/// A parsed and checked target file.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetFile {
    /// The file as given (for messages).
    pub path: PathBuf,
    /// The folder holding it, absolute: the client's working directory and `{dir}`.
    pub dir: PathBuf,
    pub name: String,
    pub packages: Vec<String>,
    pub workloads: Vec<String>,
    pub daemons: Vec<DaemonDef>,
    pub node_setup: Option<Located>,
    pub node_wipe: Option<Located>,
    pub cluster_setup: Option<Located>,
    pub primaries: Option<Located>,
    pub client_command: Located,
    /// `[membership]`: how to add and remove a node, for the membership fault.
    pub membership: Option<Membership>,
    /// Every template used anywhere, with its position (to name the line of a template
    /// that has no value in a given run).
    uses: Vec<(Var, Position)>,
}

// The file as TOML: every table refuses keys it does not know. Required keys are
// optional here so that a missing one is reported in our words, at the table it belongs to.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    workloads: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    daemon: Vec<Spanned<RawDaemon>>,
    node: Option<RawNode>,
    cluster: Option<RawCluster>,
    client: Option<Spanned<RawClient>>,
    membership: Option<Spanned<RawMembership>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    name: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    ready: Option<Spanned<String>>,
    ready_tcp: Option<Spanned<u16>>,
    ready_timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    log_files: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    setup: Option<Spanned<String>>,
    wipe: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    setup: Option<Spanned<String>>,
    primaries: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMembership {
    add: Option<Spanned<String>>,
    remove: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    command: Option<Spanned<String>>,
}

/// Turns byte offsets of one file into messages naming its lines.
struct Source<'a> {
    path: String,
    text: &'a str,
}

impl Source<'_> {
    fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        // Offsets from the TOML parser are on char boundaries; step back if not.
        let mut offset = offset;
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> FileError {
        let Position { line, column } = self.position(offset);
        FileError::At {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, span: &Range<usize>, message: impl Into<String>) -> FileError {
        self.error_at(span.start, message)
    }

    /// The file offset of byte `offset` of the decoded string whose token is `span`: exact
    /// when nothing before it was escaped, else the start of the string.
    fn offset_in_string(&self, span: &Range<usize>, decoded: &str, offset: usize) -> usize {
        let Some(raw) = self.text.get(span.clone()) else {
            return span.start;
        };
        let delimiter = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        let mut start = span.start + delimiter;
        let mut inner = raw.get(delimiter..).unwrap_or("");
        // A newline right after an opening `"""` is not part of the string.
        if delimiter == 3 {
            for newline in ["\r\n", "\n"] {
                if let Some(rest) = inner.strip_prefix(newline) {
                    start += newline.len();
                    inner = rest;
                    break;
                }
            }
        }
        match decoded.get(..offset) {
            Some(prefix) if inner.starts_with(prefix) => start + offset,
            _ => span.start,
        }
    }
}

/// Reads and checks the target file at `path`.
pub fn load(path: &Path) -> Result<TargetFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).map_err(|e| FileError::Read {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    parse(&text, path, &dir)
}

/// Parses and checks a target file's text; `path` names it in messages, `dir` is its
/// folder.
pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<TargetFile, FileError> {
    let mut p = Parser {
        src: Source {
            path: path.display().to_string(),
            text,
        },
        uses: Vec::new(),
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        p.src.error_at(offset, toml_message(e.message()))
    })?;
    let name = raw.name.as_ref().ok_or_else(|| {
        p.src.error_at(
            0,
            "the file has no `name`; add one at the top, e.g. name = \"my-system\"",
        )
    })?;
    p.name(name, "the target's name")?;
    let packages = p.packages(&raw.packages)?;
    let workloads = p.workloads(raw.workloads.as_ref())?;
    let daemons = p.daemons(&raw.daemon)?;
    let (node_setup, node_wipe) = match &raw.node {
        Some(n) => (
            p.optional(&n.setup, "[node] setup")?,
            p.optional(&n.wipe, "[node] wipe")?,
        ),
        None => (None, None),
    };
    let (cluster_setup, primaries) = match &raw.cluster {
        Some(c) => (
            p.optional(&c.setup, "[cluster] setup")?,
            p.optional(&c.primaries, "[cluster] primaries")?,
        ),
        None => (None, None),
    };
    let client = raw.client.as_ref().ok_or_else(|| {
        p.src.error_at(
            text.len(),
            "the file has no [client] table; add one with command = \"...\" (the program distest runs once per worker to speak the client protocol)",
        )
    })?;
    let command = client.get_ref().command.as_ref().ok_or_else(|| {
        p.src.error(
            &client.span(),
            "[client] has no `command`; add the program distest runs once per worker, e.g. command = \"python3 client.py\"",
        )
    })?;
    let client_command = p.template(command, Scope::ControlNode, "[client] command")?;
    let membership = match &raw.membership {
        None => None,
        Some(table) => {
            let m = table.get_ref();
            match (p.optional(&m.add, "[membership] add")?, p.optional(&m.remove, "[membership] remove")?) {
                (Some(add), Some(remove)) => Some(Membership { add, remove }),
                _ => {
                    return Err(p.src.error(
                        &table.span(),
                        "[membership] needs both `add` and `remove` (a node removed must be added back at the heal); give both or leave the table out",
                    ))
                }
            }
        }
    };
    Ok(TargetFile {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        name: name.get_ref().clone(),
        packages,
        workloads,
        daemons,
        node_setup,
        node_wipe,
        cluster_setup,
        primaries,
        client_command,
        membership,
        uses: p.uses,
    })
}

/// Checks the parts of a file, collecting every template use on the way.
struct Parser<'a> {
    src: Source<'a>,
    uses: Vec<(Var, Position)>,
}

impl Parser<'_> {
    /// Parses one template string of the file, naming the position of a bad template.
    fn template(
        &mut self,
        s: &Spanned<String>,
        scope: Scope,
        what: &str,
    ) -> Result<Located, FileError> {
        let src = &self.src;
        let span = s.span();
        let template =
            Template::parse(s.get_ref(), scope).map_err(|TemplateError { offset, message }| {
                src.error_at(src.offset_in_string(&span, s.get_ref(), offset), message)
            })?;
        if template.is_blank() {
            return Err(src.error(
                &span,
                format!("{what} is empty; give a command or leave the key out"),
            ));
        }
        for (var, offset) in template.vars() {
            let at = src.position(src.offset_in_string(&span, s.get_ref(), offset));
            self.uses.push((var.clone(), at));
        }
        Ok(Located {
            template,
            at: src.position(span.start),
        })
    }

    fn optional(
        &mut self,
        s: &Option<Spanned<String>>,
        what: &str,
    ) -> Result<Option<Located>, FileError> {
        s.as_ref()
            .map(|s| self.template(s, Scope::Node, what))
            .transpose()
    }

    fn name(&self, name: &Spanned<String>, what: &str) -> Result<(), FileError> {
        let n = name.get_ref();
        let valid = !n.is_empty()
            && n.len() <= MAX_NAME_LEN
            && n.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(())
        } else {
            Err(self.src.error(
                &name.span(),
                format!(
                    "{what} {n:?} cannot be used: it names files and directories, so use 1 to {MAX_NAME_LEN} lowercase letters, digits, - or _"
                ),
            ))
        }
    }

    fn packages(&self, raw: &[Spanned<String>]) -> Result<Vec<String>, FileError> {
        raw.iter()
            .map(|p| {
                if crate::nodes::packages::valid_package_name(p.get_ref()) {
                    Ok(p.get_ref().clone())
                } else {
                    Err(self.src.error(
                        &p.span(),
                        format!(
                            "{:?} is not a Debian package name; `packages` lists packages as apt-get knows them (lowercase letters, digits, + - .)",
                            p.get_ref()
                        ),
                    ))
                }
            })
            .collect()
    }

    fn workloads(
        &self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<String>, FileError> {
        let known = file_workloads().join(", ");
        let raw = raw.ok_or_else(|| {
            self.src.error_at(
                0,
                format!("the file has no `workloads`; list what the client speaks, e.g. workloads = [\"register\"] (known: {known})"),
            )
        })?;
        if raw.get_ref().is_empty() {
            return Err(self.src.error(
                &raw.span(),
                format!("`workloads` is empty; list what the client speaks (known: {known})"),
            ));
        }
        let mut workloads: Vec<String> = Vec::new();
        for w in raw.get_ref() {
            if !file_workloads().contains(&w.get_ref().as_str()) {
                return Err(self.src.error(
                    &w.span(),
                    format!(
                        "unknown workload {:?}; the workloads are {known}",
                        w.get_ref()
                    ),
                ));
            }
            if workloads.contains(w.get_ref()) {
                return Err(self.src.error(
                    &w.span(),
                    format!("workload {:?} is listed twice; list it once", w.get_ref()),
                ));
            }
            workloads.push(w.get_ref().clone());
        }
        Ok(workloads)
    }

    fn daemons(&mut self, raw: &[Spanned<RawDaemon>]) -> Result<Vec<DaemonDef>, FileError> {
        if raw.is_empty() {
            return Err(self.src.error_at(
                self.src.text.len(),
                "the file has no [[daemon]]; add one per process to run on every node, with name = \"...\" and start = \"...\"",
            ));
        }
        let mut daemons: Vec<DaemonDef> = Vec::new();
        for d in raw {
            let table = d.span();
            let d = d.get_ref();
            let name = d.name.as_ref().ok_or_else(|| {
                self.src.error(
                    &table,
                    "this [[daemon]] has no `name`; add name = \"...\" (it names the daemon's log and pid files)",
                )
            })?;
            self.name(name, "a daemon's name")?;
            if daemons.iter().any(|x| &x.name == name.get_ref()) {
                return Err(self.src.error(
                    &name.span(),
                    format!(
                        "two [[daemon]] tables are named {:?}; give each its own name",
                        name.get_ref()
                    ),
                ));
            }
            let start = d.start.as_ref().ok_or_else(|| {
                self.src.error(
                    &table,
                    format!(
                        "[[daemon]] {:?} has no `start`; add the command that runs it in the foreground",
                        name.get_ref()
                    ),
                )
            })?;
            let start = self.template(start, Scope::Node, "`start`")?;
            let ready = self.optional(&d.ready, "`ready`")?;
            if let Some(port) = d.ready_tcp.as_ref().filter(|p| *p.get_ref() == 0) {
                return Err(self.src.error(
                    &port.span(),
                    "`ready_tcp` is 0; give the TCP port the daemon listens on",
                ));
            }
            let ready_timeout = match &d.ready_timeout_s {
                None => DEFAULT_READY_TIMEOUT,
                Some(t) if *t.get_ref() > 0.0 && *t.get_ref() <= MAX_READY_TIMEOUT_S => {
                    Duration::from_secs_f64(*t.get_ref())
                }
                Some(t) => {
                    return Err(self.src.error(
                        &t.span(),
                        format!(
                            "`ready_timeout_s` is {}; give a number of seconds above 0 and at most {MAX_READY_TIMEOUT_S}",
                            t.get_ref()
                        ),
                    ))
                }
            };
            let log_files = d
                .log_files
                .iter()
                .map(|f| self.template(f, Scope::Node, "a `log_files` entry"))
                .collect::<Result<Vec<_>, _>>()?;
            daemons.push(DaemonDef {
                name: name.get_ref().clone(),
                start,
                ready,
                ready_tcp: d.ready_tcp.as_ref().map(|p| *p.get_ref()),
                ready_timeout,
                log_files,
            });
        }
        Ok(daemons)
    }
}

/// The TOML parser's message, made one sentence with what to do.
fn toml_message(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(|l| l.trim().trim_end_matches('.'))
        .filter(|l| !l.is_empty())
        .collect();
    let message = if lines.is_empty() {
        "this is not valid TOML".to_string()
    } else {
        lines.join(": ")
    };
    if message.starts_with("unknown field") {
        format!("{message}; fix the key's spelling or remove it (docs/targets.md lists every key)")
    } else {
        format!("{message}; see docs/targets.md for the file format")
    }
}

impl TargetFile {
    /// Checks that every `{set.KEY}` the file uses has a value in `settings`, naming the
    /// line of the first that does not.
    pub fn check_settings(&self, settings: &BTreeMap<String, String>) -> Result<(), FileError> {
        for (var, at) in &self.uses {
            if let Var::Set(key) = var {
                if !settings.contains_key(key) {
                    return Err(FileError::At {
                        path: self.path.display().to_string(),
                        line: at.line,
                        column: at.column,
                        message: format!(
                            "{var} is used but no --set {key}=VALUE was given; pass it on the command line"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The settings the file's templates use.
    pub fn setting_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .uses
            .iter()
            .filter_map(|(v, _)| match v {
                Var::Set(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "redis-sentinel"
packages = ["redis-server", "redis-sentinel"]
workloads = ["register", "set"]

[[daemon]]
name = "redis"
start = "redis-server --port 6379 --bind {ip} --dir {data_dir}"
ready = "redis-cli -h {ip} -p 6379 ping"
log_files = ["{log_dir}/redis-extra.log"]

[[daemon]]
name = "sentinel"
start = "redis-sentinel {data_dir}/sentinel.conf"
ready_tcp = 26379
ready_timeout_s = 20

[node]
setup = "mkdir -p {data_dir} && printf 'port 26379\n' > {data_dir}/sentinel.conf"

[cluster]
primaries = "redis-cli -p 26379 sentinel get-master-addr-by-name {set.master}"

[client]
command = "python3 client.py --primary {primary_ip}"
"#;

    fn parse_str(text: &str) -> Result<TargetFile, FileError> {
        parse(text, Path::new("t/target.toml"), Path::new("/srv/t"))
    }

    /// The (line, column) and message of a parse error.
    fn error_of(text: &str) -> (usize, usize, String) {
        match parse_str(text).unwrap_err() {
            FileError::At {
                line,
                column,
                message,
                path,
            } => {
                assert_eq!(path, "t/target.toml");
                (line, column, message)
            }
            other => panic!("expected a located error, got {other}"),
        }
    }

    #[test]
    fn a_complete_file_parses_into_its_parts() {
        let t = parse_str(GOOD).unwrap();
        assert_eq!(t.name, "redis-sentinel");
        assert_eq!(t.packages, ["redis-server", "redis-sentinel"]);
        assert_eq!(t.workloads, ["register", "set"]);
        assert_eq!(t.daemons.len(), 2);
        assert_eq!(t.daemons[0].name, "redis");
        assert_eq!(t.daemons[0].ready_timeout, DEFAULT_READY_TIMEOUT);
        assert_eq!(t.daemons[0].log_files.len(), 1);
        assert_eq!(t.daemons[1].ready_tcp, Some(26379));
        assert_eq!(t.daemons[1].ready_timeout, Duration::from_secs(20));
        assert_eq!(t.daemons[0].start.at, Position { line: 8, column: 9 });
        assert!(t.node_setup.is_some() && t.node_wipe.is_none());
        assert!(t.cluster_setup.is_none() && t.primaries.is_some());
        assert_eq!(t.dir, Path::new("/srv/t"));
        assert_eq!(t.setting_keys(), ["master"]);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_column() {
        let text = GOOD.replace("ready_tcp = 26379", "ready_tpc = 26379");
        let (line, column, message) = error_of(&text);
        assert_eq!((line, column), (15, 1), "{message}");
        assert!(message.contains("unknown field `ready_tpc`"), "{message}");
        assert!(
            message.contains("ready_tcp"),
            "names the valid keys: {message}"
        );
        let text = GOOD.replace("[client]", "[client]\nenv = 1");
        let (line, _, message) = error_of(&text);
        assert_eq!(line, 25, "{message}");
        let (line, _, message) = error_of(&format!("nme = \"x\"\n{GOOD}"));
        assert_eq!(line, 1, "{message}");
        assert!(message.contains("unknown field `nme`"), "{message}");
        let (line, _, message) = error_of(&GOOD.replace("[cluster]", "[clustr]"));
        assert_eq!(line, 21, "{message}");
    }

    #[test]
    fn an_unknown_template_is_named_at_its_own_column() {
        let text = GOOD.replace("--dir {data_dir}", "--dir {datadir}");
        let (line, column, message) = error_of(&text);
        assert_eq!((line, column), (8, 53), "{message}");
        assert!(message.contains("unknown template {datadir}"), "{message}");
        // In a literal multi-line string too.
        let text = GOOD.replace(
            "setup = \"mkdir -p {data_dir}",
            "setup = '''\nmkdir -p {data_dir}\necho {nodez}'''\nx = \"",
        );
        let text = text.replace(
            "x = \" && printf 'port 26379\\n' > {data_dir}/sentinel.conf\"\n",
            "",
        );
        let (line, column, message) = error_of(&text);
        assert_eq!((line, column), (21, 6), "{message}");
        assert!(message.contains("{nodez}"), "{message}");
    }

    #[test]
    fn a_template_after_an_escape_is_named_at_its_string() {
        let text = GOOD.replace(
            "start = \"redis-sentinel {data_dir}",
            "start = \"echo \\\"hi\\\" {bogus} redis-sentinel {data_dir}",
        );
        let (line, column, message) = error_of(&text);
        assert_eq!((line, column), (14, 9), "{message}");
        assert!(message.contains("{bogus}"), "{message}");
    }

    #[test]
    fn per_node_templates_are_refused_in_the_client_command() {
        let text = GOOD.replace("--primary {primary_ip}", "--node {node}");
        let (line, column, message) = error_of(&text);
        assert_eq!((line, column), (25, 37), "{message}");
        assert!(message.contains("control node"), "{message}");
    }

    #[test]
    fn a_missing_command_or_client_is_named() {
        let (line, _, message) = error_of(&GOOD.replace("command = ", "# command = "));
        assert_eq!(line, 24, "{message}");
        assert!(message.contains("[client] has no `command`"), "{message}");
        let no_client = GOOD.split("[client]").next().unwrap();
        let (_, _, message) = error_of(no_client);
        assert!(message.contains("no [client] table"), "{message}");
        let (line, _, message) = error_of(&GOOD.replace(
            "command = \"python3 client.py --primary {primary_ip}\"",
            "command = \"  \"",
        ));
        assert_eq!(line, 25, "{message}");
        assert!(message.contains("empty"), "{message}");
    }

    #[test]
    fn daemon_mistakes_are_named() {
        let (line, _, message) = error_of(&GOOD.replace("name = \"sentinel\"", "name = \"redis\""));
        assert_eq!(line, 13, "{message}");
        assert!(message.contains("two [[daemon]] tables"), "{message}");
        let (line, _, message) = error_of(&GOOD.replace("start = \"redis-sentinel", "stop = \"x"));
        assert!(message.contains("unknown field `stop`"), "{message}");
        assert_eq!(line, 14);
        let (line, _, message) =
            error_of(&GOOD.replace("start = \"redis-sentinel", "# start = \"x"));
        assert!(message.contains("has no `start`"), "{message}");
        assert_eq!(line, 12, "the daemon's table: {message}");
        let (_, _, message) =
            error_of(&GOOD.replace("ready_timeout_s = 20", "ready_timeout_s = -1"));
        assert!(message.contains("above 0"), "{message}");
        let (_, _, message) = error_of(&GOOD.replace("ready_tcp = 26379", "ready_tcp = 70000"));
        assert!(
            message.contains("u16") || message.contains("70000"),
            "{message}"
        );
        let (_, _, message) = error_of(&GOOD.replace("ready_tcp = 26379", "ready_tcp = \"26379\""));
        assert!(message.contains("invalid type"), "{message}");
        let (_, _, message) =
            error_of(&GOOD.replace("name = \"redis\"", "name = \"Redis Server\""));
        assert!(message.contains("lowercase"), "{message}");
    }

    #[test]
    fn top_level_mistakes_are_named() {
        let (_, _, message) =
            error_of(&GOOD.replace("\"register\", \"set\"", "\"register\", \"bank\""));
        assert!(message.contains("unknown workload \"bank\""), "{message}");
        let (_, _, message) = error_of(&GOOD.replace("\"register\", \"set\"", ""));
        assert!(message.contains("`workloads` is empty"), "{message}");
        let (_, _, message) = error_of(&GOOD.replace("\"register\", \"set\"", "\"set\", \"set\""));
        assert!(message.contains("listed twice"), "{message}");
        let (line, column, message) =
            error_of(&GOOD.replace("\"redis-sentinel\"]", "\"redis sentinel\"]"));
        assert_eq!((line, column), (3, 29), "{message}");
        assert!(message.contains("not a Debian package name"), "{message}");
        let (_, _, message) = error_of(&GOOD.replace("name = \"redis-sentinel\"", ""));
        assert!(message.contains("no `name`"), "{message}");
        let (line, column, message) = error_of(&GOOD.replace("workloads = [", "workloads = [[["));
        assert!((4..=6).contains(&line), "{line}: {message}");
        assert!(column >= 1, "{message}");
        assert!(message.contains("docs/targets.md"), "{message:?}");
        assert!(!message.contains('\n'), "one line: {message:?}");
        let (_, _, message) = error_of("x = ");
        assert!(
            message.starts_with("this is not valid TOML;"),
            "{message:?}"
        );
        let no_daemon: String = GOOD
            .lines()
            .filter(|l| !l.contains("[[daemon]]"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_str(&no_daemon).is_err());
    }

    #[test]
    fn membership_needs_both_commands() {
        let with = |table: &str| parse_str(&format!("{GOOD}\n[membership]\n{table}"));
        let t = with("add = \"x add {node} {ip}\"\nremove = \"x rm {node}\"").unwrap();
        let m = t.membership.unwrap();
        assert_eq!(m.add.at.line, 28);
        assert!(parse_str(GOOD).unwrap().membership.is_none());
        let err = with("add = \"x add {node}\"").unwrap_err().to_string();
        assert!(
            err.contains("line 27, column 1: [membership] needs both"),
            "{err}"
        );
        let err = with("add = \"x\"\nremove = \"y\"\njoin = \"z\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `join`"), "{err}");
    }

    #[test]
    fn settings_the_templates_need_are_checked_with_their_line() {
        let t = parse_str(GOOD).unwrap();
        let err = t.check_settings(&BTreeMap::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "t/target.toml line 22, column 66: {set.master} is used but no --set master=VALUE was given; pass it on the command line"
        );
        let settings = BTreeMap::from([("master".to_string(), "mymaster".to_string())]);
        t.check_settings(&settings).unwrap();
    }

    #[test]
    fn the_shipped_examples_parse() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/targets");
        let mut seen = 0;
        for folder in std::fs::read_dir(&examples).unwrap() {
            for file in std::fs::read_dir(folder.unwrap().path()).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "toml") {
                    let t = load(&file).unwrap_or_else(|e| panic!("{e}"));
                    assert!(!t.workloads.is_empty() && !t.daemons.is_empty());
                    seen += 1;
                }
            }
        }
        assert!(
            seen >= 4,
            "redis-sentinel, mariadb, etcd and mykv ship: {seen}"
        );
    }

    #[test]
    fn an_unreadable_file_is_a_read_error() {
        let err = load(Path::new("/nonexistent/dt/target.toml")).unwrap_err();
        assert!(
            err.to_string().contains("could not read the target file"),
            "{err}"
        );
    }

    proptest::proptest! {
        /// Any bytes as a file give a target or a located error, never a panic.
        #[test]
        fn garbage_never_panics(text in "[a-z\\[\\]={}\"'\n ._-]{0,200}") {
            if let Err(FileError::At { line, column, .. }) = parse_str(&text) {
                proptest::prop_assert!(line >= 1 && column >= 1);
            }
        }

        /// Replacing any one character of a good file gives a target or a located error.
        #[test]
        fn one_char_mutations_never_panic(at in 0usize..GOOD.len(), c in proptest::char::range(' ', '~')) {
            if GOOD.is_char_boundary(at) {
                let mut text = GOOD.to_string();
                let end = (at + 1..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
                text.replace_range(at..end, &c.to_string());
                let _ = parse_str(&text);
            }
        }
    }
}
