//! The target file: what a user writes to describe their system (`target.toml`), parsed
//! and checked completely before anything is provisioned.
//!
//! Every mistake is reported as one sentence naming the file, line and column, and all
//! the mistakes of a file at once: first every unknown key, else every other mistake
//! (only a TOML syntax error or a value of the wrong type stops at the first). Mistakes
//! include a TOML syntax error, a key distest does not know (typos must not be ignored: a misspelt
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
    #[error("{path} has {} mistakes:{}", .problems.len(), listed(.problems))]
    Several {
        path: String,
        /// Each an `At`, in the order of the file.
        problems: Vec<FileError>,
    },
}

impl FileError {
    /// One error for the mistakes of the file at `path`, in the order of the file.
    fn of(mut problems: Vec<FileError>, path: &str) -> FileError {
        problems.sort_by_key(|p| match p {
            FileError::At { line, column, .. } => (*line, *column),
            _ => (0, 0),
        });
        match problems.len() {
            0 => FileError::At {
                path: path.to_string(),
                line: 1,
                column: 1,
                message: "this is not a complete target file; see docs/targets.md for the format"
                    .to_string(),
            },
            1 => problems.remove(0),
            _ => FileError::Several {
                path: path.to_string(),
                problems,
            },
        }
    }
}

/// The mistakes of a file, one per line, each without the file's name said again.
fn listed(problems: &[FileError]) -> String {
    problems
        .iter()
        .map(|p| match p {
            FileError::At {
                line,
                column,
                message,
                ..
            } => format!("\n  line {line}, column {column}: {message}"),
            other => format!("\n  {other}"),
        })
        .collect()
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
/// folder. Every mistake the file has is reported at once, in the order of the file: a
/// user fixing one line at a time and re-running would otherwise meet them one by one.
/// Only a TOML syntax error, or a value of the wrong type, stops the reading at the first.
pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<TargetFile, FileError> {
    let mut p = Parser {
        src: Source {
            path: path.display().to_string(),
            text,
        },
        uses: Vec::new(),
        problems: Vec::new(),
    };
    // Unknown keys first, all of them: serde stops at the first.
    p.problems = unknown_keys(&p.src);
    if !p.problems.is_empty() {
        return Err(FileError::of(p.problems, &p.src.path));
    }
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        p.src.error_at(offset, toml_message(e.message()))
    })?;
    let name = raw.name.as_ref().ok_or_else(|| {
        p.src.error_at(
            0,
            "the file has no `name`; add one at the top, e.g. name = \"my-system\"",
        )
    });
    let name = p
        .keep(name)
        .and_then(|n| p.keep(p.name(n, "the target's name")).map(|()| n));
    let packages = p.packages(&raw.packages);
    let workloads = p.workloads(raw.workloads.as_ref());
    let daemons = p.daemons(&raw.daemon);
    let (node_setup, node_wipe) = match &raw.node {
        Some(n) => (
            p.optional(&n.setup, "[node] setup"),
            p.optional(&n.wipe, "[node] wipe"),
        ),
        None => (None, None),
    };
    let (cluster_setup, primaries) = match &raw.cluster {
        Some(c) => (
            p.optional(&c.setup, "[cluster] setup"),
            p.optional(&c.primaries, "[cluster] primaries"),
        ),
        None => (None, None),
    };
    let client_command = p.client(raw.client.as_ref());
    let membership = raw.membership.as_ref().and_then(|table| {
        let m = table.get_ref();
        match (
            p.optional(&m.add, "[membership] add"),
            p.optional(&m.remove, "[membership] remove"),
        ) {
            (Some(add), Some(remove)) => Some(Membership { add, remove }),
            (add, remove) => {
                // A half table is a mistake of its own, unless the half given was already
                // reported as bad.
                if m.add.is_some() == add.is_some() && m.remove.is_some() == remove.is_some() {
                    p.problems.push(p.src.error(
                        &table.span(),
                        "[membership] needs both `add` and `remove` (a node removed must be added back at the heal); give both or leave the table out",
                    ));
                }
                None
            }
        }
    });
    match (name, client_command) {
        (Some(name), Some(client_command)) if p.problems.is_empty() => Ok(TargetFile {
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
        }),
        _ => Err(FileError::of(p.problems, &p.src.path)),
    }
}

/// The keys each table of the file knows, as `RawFile` and its parts declare them.
const ROOT_KEYS: &[&str] = &[
    "name",
    "packages",
    "workloads",
    "daemon",
    "node",
    "cluster",
    "client",
    "membership",
];
const DAEMON_KEYS: &[&str] = &[
    "name",
    "start",
    "ready",
    "ready_tcp",
    "ready_timeout_s",
    "log_files",
];
const NODE_KEYS: &[&str] = &["setup", "wipe"];
const CLUSTER_KEYS: &[&str] = &["setup", "primaries"];
const CLIENT_KEYS: &[&str] = &["command"];
const MEMBERSHIP_KEYS: &[&str] = &["add", "remove"];

/// Every key of the file that distest does not know, each named at its line. A file that
/// is not TOML gives none here: the TOML parser names its first syntax error after.
fn unknown_keys(src: &Source) -> Vec<FileError> {
    let Ok(doc) = toml_edit::ImDocument::parse(src.text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let root = doc.as_table();
    unknown_in(src, root, ROOT_KEYS, &mut found);
    for (name, known) in [
        ("node", NODE_KEYS),
        ("cluster", CLUSTER_KEYS),
        ("client", CLIENT_KEYS),
        ("membership", MEMBERSHIP_KEYS),
    ] {
        if let Some(table) = root.get(name).and_then(|t| t.as_table_like()) {
            unknown_in(src, table, known, &mut found);
        }
    }
    match root.get("daemon") {
        Some(toml_edit::Item::ArrayOfTables(daemons)) => {
            for d in daemons.iter() {
                unknown_in(src, d, DAEMON_KEYS, &mut found);
            }
        }
        Some(toml_edit::Item::Value(toml_edit::Value::Array(daemons))) => {
            for d in daemons.iter().filter_map(|d| d.as_inline_table()) {
                unknown_in(src, d, DAEMON_KEYS, &mut found);
            }
        }
        _ => {}
    }
    found
}

/// The keys of `table` that are not `known`, in the words serde would use, with the
/// nearest known key when one is a likely typo.
fn unknown_in(
    src: &Source,
    table: &dyn toml_edit::TableLike,
    known: &[&str],
    found: &mut Vec<FileError>,
) {
    for (key, _) in table.iter() {
        if known.contains(&key) {
            continue;
        }
        let offset = table
            .key(key)
            .and_then(|k| k.span())
            .map_or(0, |span| span.start);
        let expected = known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match known
            .iter()
            .map(|k| (edit_distance(key, k), *k))
            .min()
            .filter(|(d, _)| *d <= 2)
        {
            Some((_, k)) => format!("did you mean `{k}`? fix the key's spelling or remove it"),
            None => "fix the key's spelling or remove it".to_string(),
        };
        found.push(src.error_at(
            offset,
            format!("unknown field `{key}`, expected one of {expected}; {hint} (docs/targets.md lists every key)"),
        ));
    }
}

/// Levenshtein distance, for suggesting the key a typo meant (keys are a few bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Checks the parts of a file, collecting every template use and every mistake on the way.
struct Parser<'a> {
    src: Source<'a>,
    uses: Vec<(Var, Position)>,
    /// The mistakes found so far; the file is refused if there is any.
    problems: Vec<FileError>,
}

impl Parser<'_> {
    /// The value of a check, or `None` with its mistake kept for the report.
    fn keep<T>(&mut self, checked: Result<T, FileError>) -> Option<T> {
        checked.map_err(|e| self.problems.push(e)).ok()
    }

    /// Parses one template string of the file, naming the position of a bad template.
    fn template(&mut self, s: &Spanned<String>, scope: Scope, what: &str) -> Option<Located> {
        let src = &self.src;
        let span = s.span();
        let template = match Template::parse(s.get_ref(), scope) {
            Ok(t) => t,
            Err(TemplateError { offset, message }) => {
                let e = src.error_at(src.offset_in_string(&span, s.get_ref(), offset), message);
                self.problems.push(e);
                return None;
            }
        };
        if template.is_blank() {
            let e = src.error(
                &span,
                format!("{what} is empty; give a command or leave the key out"),
            );
            self.problems.push(e);
            return None;
        }
        for (var, offset) in template.vars() {
            let at = src.position(src.offset_in_string(&span, s.get_ref(), offset));
            self.uses.push((var.clone(), at));
        }
        Some(Located {
            template,
            at: src.position(span.start),
        })
    }

    /// An optional per-node template: `None` when it is absent or has a mistake (kept).
    fn optional(&mut self, s: &Option<Spanned<String>>, what: &str) -> Option<Located> {
        s.as_ref().and_then(|s| self.template(s, Scope::Node, what))
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

    fn packages(&mut self, raw: &[Spanned<String>]) -> Vec<String> {
        let mut packages = Vec::new();
        for p in raw {
            if crate::nodes::packages::valid_package_name(p.get_ref()) {
                packages.push(p.get_ref().clone());
            } else {
                let e = self.src.error(
                    &p.span(),
                    format!(
                        "{:?} is not a Debian package name; `packages` lists packages as apt-get knows them (lowercase letters, digits, + - .)",
                        p.get_ref()
                    ),
                );
                self.problems.push(e);
            }
        }
        packages
    }

    fn workloads(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let known = file_workloads().join(", ");
        let Some(raw) = raw else {
            let e = self.src.error_at(
                0,
                format!("the file has no `workloads`; list what the client speaks, e.g. workloads = [\"register\"] (known: {known})"),
            );
            self.problems.push(e);
            return Vec::new();
        };
        if raw.get_ref().is_empty() {
            let e = self.src.error(
                &raw.span(),
                format!("`workloads` is empty; list what the client speaks (known: {known})"),
            );
            self.problems.push(e);
        }
        let mut workloads: Vec<String> = Vec::new();
        for w in raw.get_ref() {
            let message = if !file_workloads().contains(&w.get_ref().as_str()) {
                format!(
                    "unknown workload {:?}; the workloads are {known}",
                    w.get_ref()
                )
            } else if workloads.contains(w.get_ref()) {
                format!("workload {:?} is listed twice; list it once", w.get_ref())
            } else {
                workloads.push(w.get_ref().clone());
                continue;
            };
            let e = self.src.error(&w.span(), message);
            self.problems.push(e);
        }
        workloads
    }

    fn daemons(&mut self, raw: &[Spanned<RawDaemon>]) -> Vec<DaemonDef> {
        if raw.is_empty() {
            let e = self.src.error_at(
                self.src.text.len(),
                "the file has no [[daemon]]; add one per process to run on every node, with name = \"...\" and start = \"...\"",
            );
            self.problems.push(e);
        }
        let mut daemons: Vec<DaemonDef> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for d in raw {
            let table = d.span();
            let d = d.get_ref();
            let name = match &d.name {
                None => {
                    let e = self.src.error(
                        &table,
                        "this [[daemon]] has no `name`; add name = \"...\" (it names the daemon's log and pid files)",
                    );
                    self.problems.push(e);
                    None
                }
                Some(name) => {
                    let checked = self.name(name, "a daemon's name");
                    self.keep(checked).map(|()| name)
                }
            };
            if let Some(name) = name {
                if names.contains(&name.get_ref().as_str()) {
                    let e = self.src.error(
                        &name.span(),
                        format!(
                            "two [[daemon]] tables are named {:?}; give each its own name",
                            name.get_ref()
                        ),
                    );
                    self.problems.push(e);
                }
                names.push(name.get_ref());
            }
            let called = name.map_or_else(|| "this".to_string(), |n| format!("{:?}", n.get_ref()));
            let start = match &d.start {
                Some(start) => self.template(start, Scope::Node, "`start`"),
                None => {
                    let e = self.src.error(
                        &table,
                        format!(
                            "[[daemon]] {called} has no `start`; add the command that runs it in the foreground"
                        ),
                    );
                    self.problems.push(e);
                    None
                }
            };
            let ready = self.optional(&d.ready, "`ready`");
            if let Some(port) = d.ready_tcp.as_ref().filter(|p| *p.get_ref() == 0) {
                let e = self.src.error(
                    &port.span(),
                    "`ready_tcp` is 0; give the TCP port the daemon listens on",
                );
                self.problems.push(e);
            }
            let ready_timeout = match &d.ready_timeout_s {
                None => DEFAULT_READY_TIMEOUT,
                Some(t) if *t.get_ref() > 0.0 && *t.get_ref() <= MAX_READY_TIMEOUT_S => {
                    Duration::from_secs_f64(*t.get_ref())
                }
                Some(t) => {
                    let e = self.src.error(
                        &t.span(),
                        format!(
                            "`ready_timeout_s` is {}; give a number of seconds above 0 and at most {MAX_READY_TIMEOUT_S}",
                            t.get_ref()
                        ),
                    );
                    self.problems.push(e);
                    DEFAULT_READY_TIMEOUT
                }
            };
            let log_files: Vec<Located> = d
                .log_files
                .iter()
                .filter_map(|f| self.template(f, Scope::Node, "a `log_files` entry"))
                .collect();
            if let (Some(name), Some(start)) = (name, start) {
                daemons.push(DaemonDef {
                    name: name.get_ref().clone(),
                    start,
                    ready,
                    ready_tcp: d.ready_tcp.as_ref().map(|p| *p.get_ref()),
                    ready_timeout,
                    log_files,
                });
            }
        }
        daemons
    }

    /// `[client] command`, the one required template run on the control node.
    fn client(&mut self, client: Option<&Spanned<RawClient>>) -> Option<Located> {
        let Some(client) = client else {
            let e = self.src.error_at(
                self.src.text.len(),
                "the file has no [client] table; add one with command = \"...\" (the program distest runs once per worker to speak the client protocol)",
            );
            self.problems.push(e);
            return None;
        };
        let Some(command) = client.get_ref().command.as_ref() else {
            let e = self.src.error(
                &client.span(),
                "[client] has no `command`; add the program distest runs once per worker, e.g. command = \"python3 client.py\"",
            );
            self.problems.push(e);
            return None;
        };
        self.template(command, Scope::ControlNode, "[client] command")
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
    /// Checks that every `{set.KEY}` the file uses has a value in `settings`, naming
    /// each key that has none at the line of its first use.
    pub fn check_settings(&self, settings: &BTreeMap<String, String>) -> Result<(), FileError> {
        let path = self.path.display().to_string();
        let mut missing: Vec<&str> = Vec::new();
        let mut problems = Vec::new();
        for (var, at) in &self.uses {
            match var {
                // Each missing key once, at its first use.
                Var::Set(key)
                    if !settings.contains_key(key) && !missing.contains(&key.as_str()) =>
                {
                    missing.push(key);
                    problems.push(FileError::At {
                        path: path.clone(),
                        line: at.line,
                        column: at.column,
                        message: format!(
                            "{var} is used but no --set {key}=VALUE was given; pass it on the command line"
                        ),
                    });
                }
                _ => {}
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(FileError::of(problems, &path)),
        }
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
    fn every_mistake_of_a_file_is_named_at_once_in_file_order() {
        // Three unknown keys in three tables: all named, each with its line and the key it
        // likely meant.
        let text = GOOD
            .replace("ready_tcp = 26379", "ready_tpc = 26379")
            .replace("[client]\n", "[client]\nenv = 1\n")
            .replace("[node]\n", "[node]\nsetpu = \"x\"\n");
        let FileError::Several { path, problems } = parse_str(&text).unwrap_err() else {
            panic!("expected several mistakes");
        };
        assert_eq!(path, "t/target.toml");
        let at: Vec<(usize, usize)> = problems
            .iter()
            .map(|p| match p {
                FileError::At { line, column, .. } => (*line, *column),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(at, [(15, 1), (19, 1), (26, 1)]);
        let shown = FileError::Several {
            path: path.clone(),
            problems: problems.clone(),
        }
        .to_string();
        assert!(
            shown.starts_with(
                "t/target.toml has 3 mistakes:\n  line 15, column 1: unknown field `ready_tpc`"
            ),
            "{shown}"
        );
        assert!(shown.contains("did you mean `ready_tcp`?"), "{shown}");
        assert!(shown.contains("did you mean `setup`?"), "{shown}");
        assert!(
            shown.contains("unknown field `env`, expected one of `command`; fix"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 4, "{shown}");

        // Mistakes the checks find, in different parts: a bad name, an unknown workload,
        // an unknown template, a bad port, a missing client command.
        let text = GOOD
            .replace("name = \"redis-sentinel\"", "name = \"Redis\"")
            .replace("\"register\", \"set\"", "\"register\", \"bank\"")
            .replace("--dir {data_dir}", "--dir {datadir}")
            .replace("ready_tcp = 26379", "ready_tcp = 0")
            .replace("command = \"python3 client.py --primary {primary_ip}\"", "");
        let FileError::Several { problems, .. } = parse_str(&text).unwrap_err() else {
            panic!("expected several mistakes");
        };
        let messages: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expected = [
            "cannot be used",
            "unknown workload \"bank\"",
            "unknown template {datadir}",
            "`ready_tcp` is 0",
            "[client] has no `command`",
        ];
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
        for (m, e) in messages.iter().zip(expected) {
            assert!(m.contains(e), "{m} should say {e}");
        }
    }

    #[test]
    fn inline_tables_are_checked_for_unknown_keys_too() {
        let text = "name = \"t\"\nworkloads = [\"register\"]\ndaemon = [{ name = \"d\", start = \"x\", redy = \"y\" }]\nclient = { command = \"c\", comand = \"x\" }\n";
        let FileError::Several { problems, .. } = parse_str(text).unwrap_err() else {
            panic!("expected two mistakes");
        };
        let messages: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages[0].starts_with("t/target.toml line 3, column 38: unknown field `redy`"),
            "{messages:#?}"
        );
        assert!(
            messages[0].contains("did you mean `ready`?"),
            "{messages:#?}"
        );
        assert!(
            messages[1].starts_with("t/target.toml line 4, column 27: unknown field `comand`"),
            "{messages:#?}"
        );
        assert!(
            messages[1].contains("did you mean `command`?"),
            "{messages:#?}"
        );
    }

    /// The key lists the unknown-key walk knows are the keys the TOML structs accept: a
    /// file using every listed key is refused by neither, and one more key by both.
    #[test]
    fn the_known_key_lists_match_what_the_file_structs_accept() {
        let text = format!(
            "name = \"t\"\npackages = []\nworkloads = [\"register\"]\n\
             [[daemon]]\n{}\n[node]\n{}\n[cluster]\n{}\n[client]\n{}\n[membership]\n{}\n",
            [
                "name = \"d\"",
                "start = \"x\"",
                "ready = \"x\"",
                "ready_tcp = 1",
                "ready_timeout_s = 1.0",
                "log_files = []"
            ]
            .join("\n"),
            "setup = \"x\"\nwipe = \"x\"",
            "setup = \"x\"\nprimaries = \"x\"",
            "command = \"x\"",
            "add = \"x\"\nremove = \"x\"",
        );
        let listed = |keys: &[&str], table: &str| {
            let section = text.split(table).nth(1).unwrap_or("");
            for key in keys {
                assert!(
                    section.contains(&format!("\n{key} =")) || table.is_empty(),
                    "{key} in {table}"
                );
            }
        };
        listed(DAEMON_KEYS, "[[daemon]]");
        listed(NODE_KEYS, "[node]");
        listed(CLUSTER_KEYS, "[cluster]");
        listed(CLIENT_KEYS, "[client]");
        listed(MEMBERSHIP_KEYS, "[membership]");
        for key in ROOT_KEYS {
            assert!(
                text.contains(&format!("{key} ="))
                    || text.contains(&format!("[{key}]"))
                    || text.contains(&format!("[[{key}]]")),
                "{key}"
            );
        }
        let src = Source {
            path: "t".to_string(),
            text: &text,
        };
        assert!(unknown_keys(&src).is_empty());
        toml::from_str::<RawFile>(&text).unwrap();
        let more = text.replace("[client]\n", "[client]\nextra = 1\n");
        let src = Source {
            path: "t".to_string(),
            text: &more,
        };
        assert_eq!(unknown_keys(&src).len(), 1);
        assert!(toml::from_str::<RawFile>(&more).is_err());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("ready_tpc", "ready_tcp"), 2);
        assert_eq!(edit_distance("comand", "command"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("env", "command"), 6);
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
        // Every missing key is named, each once, at its first use.
        let text = GOOD.replace(
            "--primary {primary_ip}",
            "--primary {primary_ip} --a {set.a} --b {set.master} {set.a}",
        );
        let t = parse_str(&text).unwrap();
        let err = t.check_settings(&BTreeMap::new()).unwrap_err().to_string();
        assert!(
            err.starts_with("t/target.toml has 2 mistakes:\n  line 22, column 66: {set.master}"),
            "{err}"
        );
        assert!(
            err.contains("\n  line 25, column 57: {set.a} is used but no --set a=VALUE"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 3, "{err}");
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
