//! File corruption (`--nemesis corrupt-file`): on some nodes, stop the target, flip bits
//! in or cut the tail off one file of its data directory, start it again. What a disk
//! that returns other bytes than were written (or a filesystem that lost a file's tail)
//! does to the system: it must notice (checksums) and recover from its peers, or the
//! checkers see the damage.
//!
//! The file is chosen by `file`, a pattern relative to the data directory (`*` any run
//! of characters, `/` included; `?` one character): among the non-empty regular files
//! that match, in path order, one drawn from the schedule's seed. The change is made
//! through the directory the target uses, so on a lazyfs mount (`--nemesis disk,...`)
//! the changed bytes are written like any write and are durable once the target fsyncs
//! that file. Needs GNU `find`, `od`, `dd` and `truncate` on the node (coreutils,
//! findutils).
//!
//! Op: `corrupt-file` `{"targets": mode, "nodes": [...], "file": pattern, "mode":
//! "bitflip" | "truncate", "flips"?: n (bitflip, default 1), "drop_bytes"?: n (truncate,
//! default drawn)}`; completion adds `"changed": {node: {"file", "size", "flips":
//! [{"offset", "bit", "before", "after"}]}}` or `{"file", "size", "truncated_to"}`.
//! A target that refuses to start on the changed file (its checksums caught it) stays
//! down (`"restarted": false`, `"start_error"` in its result); the next `corrupt-file` op
//! first puts its bytes back (the same bits flipped again, the cut tail appended: a
//! replaced disk) and starts it (`"brought_back": {"nodes", "restored": {node: {"file",
//! "size"}}}` in its completion). Heal does the same as op `restart-corrupt`.

use crate::cluster::{shell_quote, COMMAND_TIMEOUT};
use crate::error::NemesisError;
use crate::nemesis::FaultOp;
use crate::node::{DataDir, NodeError, NodeShell};
use crate::preflight::{said, Lack};
use crate::restart::{DataFault, DataFaultNemesis};
use crate::targeting::Targeting;
use crate::value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

pub const CORRUPT: &str = "corrupt-file";
pub const RESTART: &str = "restart-corrupt";

/// Most bit flips one op may ask for.
pub const MAX_FLIPS: i64 = 64;
/// A drawn truncation drops at most this many bytes.
const MAX_DRAWN_DROP_BYTES: u64 = 1024;

/// Whether `path` matches `pattern`: `*` matches any run of characters (`/` included),
/// `?` exactly one, everything else itself.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    // Classic backtracking over the last `*`: linear in practice, bounded by |p|·|s|.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The non-empty regular files under `dir` on the node, as (relative path, size), in
/// path order.
fn list_files(node: &dyn NodeShell, dir: &str) -> Result<Vec<(String, u64)>, NemesisError> {
    let command = format!(
        "cd {} && find . -type f -size +0c -printf '%s %P\\n'",
        shell_quote(dir)
    );
    let out = node.exec_ok(&command, COMMAND_TIMEOUT)?;
    let mut files: Vec<(String, u64)> = out
        .stdout
        .lines()
        .filter_map(|line| {
            let (size, path) = line.split_once(' ')?;
            Some((path.to_string(), size.parse().ok()?))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Flips `mask` bits of the byte at `offset` of `file`; prints `offset before after`.
fn flip_command(file: &str, offset: u64, mask: u8) -> String {
    format!(
        "b=$(od -An -tu1 -j {offset} -N1 {f} | tr -d ' ') && [ -n \"$b\" ] && n=$(( b ^ {mask} )) && \
         printf \"$(printf '\\\\%03o' \"$n\")\" | dd of={f} bs=1 seek={offset} count=1 conv=notrunc 2>/dev/null && \
         echo \"{offset} $b $n\"",
        f = shell_quote(file)
    )
}

pub struct CorruptFile;

impl DataFault for CorruptFile {
    const NEMESIS: &'static str = "corrupt-file";
    const FAULT_F: &'static str = CORRUPT;
    const RESTART_F: &'static str = RESTART;
    const RESULT_KEY: &'static str = "changed";
    /// A broken disk is one machine's (or a few): corrupting every replica at once
    /// destroys acknowledged data in any system, which proves nothing about it.
    const DRAWN_TARGETS: &'static [Targeting] = &[Targeting::One, Targeting::Minority];

    fn draw(rng: &mut StdRng) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("file".into(), json!("*"));
        if rng.gen_bool(0.5) {
            fields.insert("mode".into(), json!("bitflip"));
            fields.insert("flips".into(), json!(rng.gen_range(1..=4)));
        } else {
            fields.insert("mode".into(), json!("truncate"));
        }
        fields
    }

    fn fields(op: &FaultOp) -> Result<Map<String, Value>, NemesisError> {
        let bad = |reason: &str| NemesisError::bad_value(CORRUPT, reason);
        let file = value::opt_str(op, "file")?.unwrap_or("*");
        if file.is_empty() || file.starts_with('/') || file.split('/').any(|part| part == "..") {
            return Err(bad(
                "`file` must be a pattern relative to the data directory, without `..`",
            ));
        }
        let mut fields = Map::new();
        fields.insert("file".into(), json!(file));
        match value::opt_str(op, "mode")?.unwrap_or("bitflip") {
            "bitflip" => {
                if op.value.get("drop_bytes").is_some_and(|v| !v.is_null()) {
                    return Err(bad("`drop_bytes` goes with `mode: truncate`"));
                }
                let flips = match value::opt_i64(op, "flips")? {
                    None => 1,
                    Some(_) => value::bounded_i64(op, "flips", 1, MAX_FLIPS)?,
                };
                fields.insert("mode".into(), json!("bitflip"));
                fields.insert("flips".into(), json!(flips));
            }
            "truncate" => {
                if op.value.get("flips").is_some_and(|v| !v.is_null()) {
                    return Err(bad("`flips` goes with `mode: bitflip`"));
                }
                fields.insert("mode".into(), json!("truncate"));
                if value::opt_i64(op, "drop_bytes")?.is_some() {
                    let n = value::bounded_i64(op, "drop_bytes", 1, i64::MAX)?;
                    fields.insert("drop_bytes".into(), json!(n));
                }
            }
            other => {
                return Err(bad(&format!(
                    "`mode` is `{other}`, not `bitflip` or `truncate`"
                )))
            }
        }
        Ok(fields)
    }

    /// GNU find (`-printf`), od, dd and truncate.
    fn preflight(node: &dyn NodeShell, _dir: &DataDir) -> Result<(), Lack> {
        let out = node.exec(
            "find / -maxdepth 0 -printf '' && command -v od dd truncate >/dev/null",
            COMMAND_TIMEOUT,
        )?;
        if !out.success() {
            return Err(Lack::new(
                "GNU find, od, dd and truncate (findutils, coreutils)",
                said(&out),
            ));
        }
        Ok(())
    }

    fn apply(
        node: &dyn NodeShell,
        dir: &DataDir,
        fields: &Map<String, Value>,
        seed: u64,
    ) -> Result<Value, NemesisError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let root = dir.path.to_string_lossy().to_string();
        let pattern = fields["file"].as_str().unwrap_or("*");
        let candidates: Vec<(String, u64)> = list_files(node, &root)?
            .into_iter()
            .filter(|(path, _)| glob_match(pattern, path))
            .collect();
        if candidates.is_empty() {
            return Err(NemesisError::NoFileMatches {
                node: node.name().to_string(),
                dir: root,
                pattern: pattern.to_string(),
            });
        }
        let (file, size) = candidates[rng.gen_range(0..candidates.len())].clone();
        let full = dir.path.join(&file).to_string_lossy().to_string();
        if fields["mode"] == "truncate" {
            let drop = match fields.get("drop_bytes").and_then(Value::as_u64) {
                Some(n) => n.min(size),
                None => rng.gen_range(1..=size.min(MAX_DRAWN_DROP_BYTES)),
            };
            let new_len = size - drop;
            // The tail is kept beside the data directory until the target has started
            // (`settle`), or put back if it refuses to (`undo`).
            node.exec_ok(
                &format!(
                    "tail -c +{} {f} > {saved} && truncate -s {new_len} {f}",
                    new_len + 1,
                    f = shell_quote(&full),
                    saved = shell_quote(&saved_tail(dir)),
                ),
                COMMAND_TIMEOUT,
            )?;
            return Ok(json!({"file": file, "size": size, "truncated_to": new_len}));
        }
        let count = fields["flips"].as_u64().unwrap_or(1);
        let mut flips = Vec::new();
        let mut script = Vec::new();
        for _ in 0..count {
            let offset = rng.gen_range(0..size);
            let bit = rng.gen_range(0..8u8);
            script.push(flip_command(&full, offset, 1 << bit));
            flips.push((offset, bit));
        }
        let out = node.exec_ok(&script.join(" && "), COMMAND_TIMEOUT)?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        if lines.len() != flips.len() {
            return Err(NemesisError::Node(NodeError::Failed {
                node: node.name().to_string(),
                command: format!("flip {} bits of {full}", flips.len()),
                status: out.status,
                stderr: format!("expected one line per flip, got {:?}", out.stdout.trim()),
            }));
        }
        let flips: Vec<Value> = flips
            .iter()
            .zip(lines)
            .map(|((offset, bit), line)| {
                let words: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                json!({
                    "offset": offset,
                    "bit": bit,
                    "before": words.get(1),
                    "after": words.get(2),
                })
            })
            .collect();
        Ok(json!({"file": file, "size": size, "flips": flips}))
    }

    /// Flips the same bits back, or appends the saved tail again.
    fn undo(node: &dyn NodeShell, dir: &DataDir, done: &Value) -> Result<Value, NemesisError> {
        let file = done["file"].as_str().unwrap_or_default();
        let full = shell_quote(&dir.path.join(file).to_string_lossy());
        let size = done["size"].as_u64().unwrap_or_default();
        let script = match done["flips"].as_array() {
            Some(flips) => flips
                .iter()
                .map(|flip| {
                    let offset = flip["offset"].as_u64().unwrap_or_default();
                    let bit = flip["bit"].as_u64().unwrap_or_default().min(7);
                    format!(
                        "{} >/dev/null",
                        flip_command(&dir.path.join(file).to_string_lossy(), offset, 1 << bit)
                    )
                })
                .collect::<Vec<_>>()
                .join(" && "),
            None => format!(
                "cat {saved} >> {full} && rm -f {saved}",
                saved = shell_quote(&saved_tail(dir))
            ),
        };
        node.exec_ok(
            &format!("{script} && [ \"$(stat -c %s {full})\" = {size} ]"),
            COMMAND_TIMEOUT,
        )?;
        Ok(json!({"file": file, "size": size}))
    }

    fn settle(node: &dyn NodeShell, dir: &DataDir, done: &Value) {
        if done.get("truncated_to").is_some() {
            let _ = node.exec(
                &format!("rm -f {}", shell_quote(&saved_tail(dir))),
                COMMAND_TIMEOUT,
            );
        }
    }
}

/// Where a truncation keeps the cut tail: beside the data directory, out of the target's
/// sight (and outside a lazyfs mount).
fn saved_tail(dir: &DataDir) -> String {
    format!(
        "{}.corrupt-tail",
        dir.path.to_string_lossy().trim_end_matches('/')
    )
}

/// The corrupt-file nemesis.
pub type Corrupt = DataFaultNemesis<CorruptFile>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeNode, FakeTarget};
    use crate::nemesis::{Nemesis, NemesisContext};
    use crate::node::{ExecOutput, NodeShell};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn globs_match_relative_paths() {
        assert!(glob_match("*", "wal.log"));
        assert!(glob_match("*", "sub/dir/file"));
        assert!(glob_match("wal.*", "wal.log"));
        assert!(glob_match("member/wal/*.wal", "member/wal/0000-0000.wal"));
        assert!(glob_match("snap?hot.json", "snapshot.json"));
        assert!(!glob_match("wal.log", "wal.log.tmp"));
        assert!(!glob_match("*.json", "wal.log"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(!glob_match("a*b*c", "a-b-b-d"));
    }

    /// A shell on this machine: the flip and truncate commands run for real.
    struct HostShell;

    impl NodeShell for HostShell {
        fn name(&self) -> &str {
            "n1"
        }
        fn address(&self) -> std::net::IpAddr {
            std::net::IpAddr::from([127, 0, 0, 1])
        }
        fn exec(&self, command: &str, _timeout: Duration) -> Result<ExecOutput, NodeError> {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .output()
                .unwrap();
            Ok(ExecOutput {
                status: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        fn is_local(&self) -> bool {
            true
        }
    }

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            let _ = std::fs::remove_file(format!("{}.corrupt-tail", self.0.display()));
        }
    }

    fn data(tag: &str) -> (TempDir, DataDir) {
        let path = std::env::temp_dir().join(format!("dt-corrupt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("sub")).unwrap();
        std::fs::write(path.join("wal.log"), (0..=255u8).collect::<Vec<u8>>()).unwrap();
        std::fs::write(path.join("sub/snapshot.json"), b"{\"x\":1}").unwrap();
        std::fs::write(path.join("LOCK"), b"").unwrap();
        let dir = DataDir {
            path: path.clone(),
            lazyfs: None,
        };
        (TempDir(path), dir)
    }

    fn fields(value: Value) -> Map<String, Value> {
        CorruptFile::fields(&FaultOp::new(CORRUPT, value)).unwrap()
    }

    #[test]
    fn bitflips_change_exactly_the_reported_bits() {
        let (tmp, dir) = data("flip");
        let before = std::fs::read(tmp.0.join("wal.log")).unwrap();
        let done = CorruptFile::apply(
            &HostShell,
            &dir,
            &fields(json!({"file": "wal.*", "flips": 3})),
            7,
        )
        .unwrap();
        assert_eq!(done["file"], "wal.log");
        assert_eq!(done["size"], 256);
        let after = std::fs::read(tmp.0.join("wal.log")).unwrap();
        let mut expected = before.clone();
        for flip in done["flips"].as_array().unwrap() {
            let offset = flip["offset"].as_u64().unwrap() as usize;
            let bit = flip["bit"].as_u64().unwrap();
            assert_eq!(
                flip["before"].as_u64().unwrap(),
                u64::from(expected[offset])
            );
            expected[offset] ^= 1 << bit;
            assert_eq!(flip["after"].as_u64().unwrap(), u64::from(expected[offset]));
        }
        assert_eq!(after, expected);
        assert_ne!(after, before);
    }

    #[test]
    fn truncation_cuts_the_reported_tail_and_empty_files_are_never_chosen() {
        let (tmp, dir) = data("trunc");
        let done = CorruptFile::apply(
            &HostShell,
            &dir,
            &fields(json!({"file": "sub/*", "mode": "truncate", "drop_bytes": 3})),
            1,
        )
        .unwrap();
        assert_eq!(
            done,
            json!({"file": "sub/snapshot.json", "size": 7, "truncated_to": 4})
        );
        assert_eq!(
            std::fs::read(tmp.0.join("sub/snapshot.json")).unwrap(),
            b"{\"x\""
        );
        let err =
            CorruptFile::apply(&HostShell, &dir, &fields(json!({"file": "LOCK"})), 1).unwrap_err();
        assert!(matches!(err, NemesisError::NoFileMatches { .. }), "{err}");
    }

    #[test]
    fn values_are_checked() {
        for value in [
            json!({"file": "/etc/passwd"}),
            json!({"file": "../x"}),
            json!({"mode": "shred"}),
            json!({"flips": 0}),
            json!({"flips": 65}),
            json!({"mode": "truncate", "flips": 2}),
            json!({"mode": "bitflip", "drop_bytes": 2}),
            json!({"mode": "truncate", "drop_bytes": 0}),
        ] {
            assert!(
                CorruptFile::fields(&FaultOp::new(CORRUPT, value.clone())).is_err(),
                "{value}"
            );
        }
    }

    #[test]
    fn preflight_finds_the_tools_here_and_names_what_a_node_lacks() {
        let (_tmp, dir) = data("preflight");
        CorruptFile::preflight(&HostShell, &dir).unwrap();
        let busybox = FakeNode::with(2, |_| fake::failed("find: unrecognized: -printf"));
        let lack = CorruptFile::preflight(&busybox, &dir).unwrap_err();
        assert_eq!(
            lack,
            Lack::new(
                "GNU find, od, dd and truncate (findutils, coreutils)",
                "find: unrecognized: -printf"
            )
        );
    }

    /// Five fake nodes whose data directory `/data` holds a 10-byte `wal.log`, their
    /// target, and the corrupt-file nemesis acting on them.
    fn five_nodes_with_a_wal() -> (Vec<Arc<FakeNode>>, Arc<FakeTarget>, Corrupt) {
        let nodes = fake::answering(5, "find .", "10 wal.log\n");
        let target = Arc::new(FakeTarget::default());
        for node in &nodes {
            target.data_dirs.lock().unwrap().insert(
                node.name().to_string(),
                DataDir {
                    path: PathBuf::from("/data"),
                    lazyfs: None,
                },
            );
        }
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed: 3,
        };
        let corrupt = Corrupt::new(&ctx);
        (nodes, target, corrupt)
    }

    #[test]
    fn the_op_stops_corrupts_and_restarts_and_draws_only_single_disk_faults() {
        let (nodes, target, mut corrupt) = five_nodes_with_a_wal();
        for _ in 0..30 {
            let op = corrupt.next_op();
            assert_eq!(op.f, CORRUPT);
            assert!(op.value["nodes"].as_array().unwrap().len() <= 2, "{op:?}");
        }
        let done = corrupt
            .invoke(&FaultOp::new(
                CORRUPT,
                json!({"nodes": ["n4"], "mode": "truncate", "drop_bytes": 4}),
            ))
            .unwrap();
        assert_eq!(
            done["changed"]["n4"],
            json!({"file": "wal.log", "size": 10, "truncated_to": 6})
        );
        assert_eq!(target.calls(), vec!["kill n4", "start n4"]);
        assert_eq!(
            nodes[3].commands()[1..],
            [
                "tail -c +7 '/data/wal.log' > '/data.corrupt-tail' && truncate -s 6 '/data/wal.log'",
                "rm -f '/data.corrupt-tail'",
            ]
        );
    }

    #[test]
    fn undo_puts_back_flipped_bits_and_cut_tails() {
        let (tmp, dir) = data("undo");
        let wal = tmp.0.join("wal.log");
        let original = std::fs::read(&wal).unwrap();
        let flips = fields(json!({"file": "wal.log", "flips": 5}));
        let done = CorruptFile::apply(&HostShell, &dir, &flips, 11).unwrap();
        assert_ne!(std::fs::read(&wal).unwrap(), original);
        let restored = CorruptFile::undo(&HostShell, &dir, &done).unwrap();
        assert_eq!(restored, json!({"file": "wal.log", "size": 256}));
        assert_eq!(std::fs::read(&wal).unwrap(), original);

        let cut = fields(json!({"file": "wal.log", "mode": "truncate", "drop_bytes": 100}));
        let done = CorruptFile::apply(&HostShell, &dir, &cut, 11).unwrap();
        assert_eq!(std::fs::read(&wal).unwrap(), original[..156]);
        let saved = PathBuf::from(saved_tail(&dir));
        assert_eq!(std::fs::read(&saved).unwrap(), original[156..]);
        CorruptFile::undo(&HostShell, &dir, &done).unwrap();
        assert_eq!(std::fs::read(&wal).unwrap(), original);
        assert!(!saved.exists());

        // Started fine on the cut file: the tail is forgotten, the file stays cut.
        let done = CorruptFile::apply(&HostShell, &dir, &cut, 11).unwrap();
        CorruptFile::settle(&HostShell, &dir, &done);
        assert!(!saved.exists());
        assert_eq!(std::fs::read(&wal).unwrap().len(), 156);
    }

    /// A target that refuses its corrupted data: the op still completes (that is the
    /// system's answer), the node stays down, and the next fault op first puts its bytes
    /// back and starts it, so faults never pile up; heal does the same for what is left.
    #[test]
    fn a_node_that_refuses_its_corrupted_data_is_brought_back_by_the_next_op() {
        let (nodes, target, mut corrupt) = five_nodes_with_a_wal();
        let cut = |node: &str| {
            FaultOp::new(
                CORRUPT,
                json!({"nodes": [node], "mode": "truncate", "drop_bytes": 4}),
            )
        };
        target.broken_start.lock().unwrap().push("n2".into());
        let done = corrupt.invoke(&cut("n2")).unwrap();
        let n2 = &done["changed"]["n2"];
        assert_eq!(n2["restarted"], false, "{done}");
        assert_eq!(
            n2["start_error"], "on n2: fake node does not start",
            "{done}"
        );
        assert_eq!(corrupt.active(), vec!["n2 down after corrupt-file"]);
        let undo = "cat '/data.corrupt-tail' >> '/data/wal.log' && rm -f '/data.corrupt-tail' && [ \"$(stat -c %s '/data/wal.log')\" = 10 ]";
        let undos = || nodes[1].commands().iter().filter(|c| *c == undo).count();

        // Still refusing after its bytes are back: the op fails before touching n3, and
        // the bytes are not appended twice.
        let err = corrupt.invoke(&cut("n3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`restart-corrupt` failed on 1 of 1 node(s): n2: the target on n2 did not start: on n2: fake node does not start"
        );
        assert_eq!(undos(), 1);
        assert!(nodes[2].commands().is_empty());

        target.broken_start.lock().unwrap().clear();
        let done = corrupt.invoke(&cut("n3")).unwrap();
        assert_eq!(done["brought_back"], json!({"nodes": ["n2"]}), "{done}");
        assert_eq!(done["changed"]["n3"]["truncated_to"], 6, "{done}");
        assert_eq!(undos(), 1);
        assert!(corrupt.active().is_empty());
        assert!(corrupt.heal().is_empty());

        // Heal puts back and starts a node left down at the end.
        target.broken_start.lock().unwrap().push("n4".into());
        corrupt.invoke(&cut("n4")).unwrap();
        target.broken_start.lock().unwrap().clear();
        let healed = corrupt.heal();
        assert_eq!(healed.len(), 1);
        assert_eq!(healed[0].0, FaultOp::new(RESTART, json!({"nodes": ["n4"]})));
        let value = healed[0].1.as_ref().unwrap();
        assert_eq!(
            value["restored"]["n4"],
            json!({"file": "wal.log", "size": 10})
        );
        assert!(corrupt.active().is_empty());
    }
}
