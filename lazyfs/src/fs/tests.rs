//! The filesystem against a reference model of the durability rules, on real temporary
//! backing directories (no FUSE, no root).
//!
//! The model keeps two whole snapshots — what the application sees (`live`) and what a
//! power failure leaves (`durable`) — as paths and byte vectors, and applies the rules of
//! `fs.rs`'s module docs in their plainest form: an fsync makes the durable namespace the
//! live one and replays pending truncations on durable data, then copies the one file's
//! bytes; a discard makes live the durable snapshot.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A backing directory removed on drop, also when a test panics.
struct Backing(PathBuf);

impl Backing {
    fn new(tag: &str) -> Backing {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dt-lazyfs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Backing(dir)
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Resolves a `/`-separated path (relative to the root) to an inode.
fn resolve(fs: &mut LazyFs, path: &str) -> FsResult<Ino> {
    let mut ino = ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = fs.lookup(ino, OsStr::new(part))?.ino;
    }
    Ok(ino)
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn create(fs: &mut LazyFs, path: &str) -> Ino {
    let (dir, name) = split(path);
    let parent = resolve(fs, dir).unwrap();
    fs.create(parent, OsStr::new(name), 0o644, 0, 0)
        .unwrap()
        .ino
}

fn write(fs: &mut LazyFs, path: &str, offset: u64, data: &[u8]) {
    let ino = resolve(fs, path).unwrap();
    fs.write(ino, offset, data).unwrap();
}

fn fsync(fs: &mut LazyFs, path: &str) {
    let ino = resolve(fs, path).unwrap();
    fs.fsync(ino).unwrap();
}

fn read_all(fs: &mut LazyFs, path: &str) -> Vec<u8> {
    let ino = resolve(fs, path).unwrap();
    fs.read(ino, 0, u32::MAX).unwrap()
}

/// Every file under `dir` on disk, by relative path, with its bytes (directories as
/// `None`).
fn disk_tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                out.insert(name.clone(), None);
                stack.push((entry.path(), format!("{name}/")));
            } else {
                out.insert(name, Some(std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

/// The same through the filesystem's live view.
fn live_tree(fs: &mut LazyFs) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT, String::new())];
    while let Some((ino, prefix)) = stack.pop() {
        for (child, kind, name) in fs.readdir(ino).unwrap().into_iter().skip(2) {
            let name = format!("{prefix}{}", name.to_string_lossy());
            match kind {
                Kind::Dir => {
                    out.insert(name.clone(), None);
                    stack.push((child, format!("{name}/")));
                }
                _ => {
                    out.insert(name, Some(fs.read(child, 0, u32::MAX).unwrap()));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Debug, Default, PartialEq)]
struct Snapshot {
    /// Path -> file id; directories map to `None`.
    names: BTreeMap<String, Option<usize>>,
    data: BTreeMap<usize, Vec<u8>>,
}

impl Snapshot {
    fn tree(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        self.names
            .iter()
            .map(|(p, id)| (p.clone(), id.map(|id| self.data[&id].clone())))
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
struct Model {
    live: Snapshot,
    durable: Snapshot,
    /// Truncations not yet committed: (file id, new length).
    pending_truncates: Vec<(usize, usize)>,
    next_id: usize,
}

impl Model {
    fn commit(&mut self) {
        self.durable.names = self.live.names.clone();
        for id in self.live.names.values().flatten() {
            self.durable.data.entry(*id).or_default();
        }
        for (id, len) in std::mem::take(&mut self.pending_truncates) {
            if let Some(d) = self.durable.data.get_mut(&id) {
                d.resize(len, 0);
            }
        }
    }

    fn fsync(&mut self, path: &str) {
        self.commit();
        if let Some(Some(id)) = self.live.names.get(path) {
            self.durable.data.insert(*id, self.live.data[id].clone());
        }
    }

    fn discard(&mut self) {
        self.live = self.durable.clone();
        self.pending_truncates.clear();
    }
}

#[derive(Clone, Debug)]
enum Step {
    Create(usize),
    Write(usize, u64, Vec<u8>),
    Truncate(usize, u64),
    Unlink(usize),
    Rename(usize, usize),
    Mkdir,
    FsyncFile(usize),
    FsyncDir,
    Discard,
}

/// Paths the test works on: three in the root, two in a directory that comes and goes.
const PATHS: [&str; 5] = ["a", "b", "c", "d/x", "d/y"];

fn step() -> impl Strategy<Value = Step> {
    // Mostly the first file, so one file sees long histories (sync, cut, extend, ...).
    let p = prop_oneof![3 => Just(0usize), 2 => 0..PATHS.len()];
    prop_oneof![
        2 => p.clone().prop_map(Step::Create),
        6 => (p.clone(), 0u64..300, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, o, d)| Step::Write(i, o, d)),
        1 => (p.clone(), 0u64..300).prop_map(|(i, l)| Step::Truncate(i, l)),
        1 => p.clone().prop_map(Step::Unlink),
        1 => (p.clone(), p.clone()).prop_map(|(a, b)| Step::Rename(a, b)),
        1 => Just(Step::Mkdir),
        2 => p.prop_map(Step::FsyncFile),
        1 => Just(Step::FsyncDir),
        1 => Just(Step::Discard),
    ]
}

/// Applies `step` to both; steps the live state makes impossible (a missing file or
/// directory, a name taken) are skipped by both.
fn apply(fs: &mut LazyFs, model: &mut Model, step: &Step) {
    let exists = |m: &Model, p: &str| m.live.names.contains_key(p);
    let dir_ok = |m: &Model, p: &str| !p.starts_with("d/") || exists(m, "d");
    match step {
        Step::Create(i) => {
            let p = PATHS[*i];
            if exists(model, p) || !dir_ok(model, p) {
                return;
            }
            create(fs, p);
            let id = model.next_id;
            model.next_id += 1;
            model.live.names.insert(p.to_string(), Some(id));
            model.live.data.insert(id, Vec::new());
        }
        Step::Write(i, offset, data) => {
            let p = PATHS[*i];
            let Some(Some(id)) = model.live.names.get(p).cloned() else {
                return;
            };
            write(fs, p, *offset, data);
            let buf = model.live.data.get_mut(&id).unwrap();
            let end = *offset as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*offset as usize..end].copy_from_slice(data);
        }
        Step::Truncate(i, len) => {
            let p = PATHS[*i];
            let Some(Some(id)) = model.live.names.get(p).cloned() else {
                return;
            };
            let ino = resolve(fs, p).unwrap();
            let change = SetAttr {
                size: Some(*len),
                ..SetAttr::default()
            };
            fs.setattr(ino, &change).unwrap();
            model
                .live
                .data
                .get_mut(&id)
                .unwrap()
                .resize(*len as usize, 0);
            model.pending_truncates.push((id, *len as usize));
        }
        Step::Unlink(i) => {
            let p = PATHS[*i];
            if !matches!(model.live.names.get(p), Some(Some(_))) {
                return;
            }
            let (dir, name) = split(p);
            let parent = resolve(fs, dir).unwrap();
            fs.unlink(parent, OsStr::new(name)).unwrap();
            model.live.names.remove(p);
        }
        Step::Rename(a, b) => {
            let (from, to) = (PATHS[*a], PATHS[*b]);
            let Some(Some(id)) = model.live.names.get(from).cloned() else {
                return;
            };
            if from == to || !dir_ok(model, to) {
                return;
            }
            let (fd, fname) = split(from);
            let (td, tname) = split(to);
            let fp = resolve(fs, fd).unwrap();
            let tp = resolve(fs, td).unwrap();
            fs.rename(fp, OsStr::new(fname), tp, OsStr::new(tname), 0)
                .unwrap();
            model.live.names.remove(from);
            model.live.names.insert(to.to_string(), Some(id));
        }
        Step::Mkdir => {
            if exists(model, "d") {
                // rmdir when empty, so the directory comes and goes
                if model.live.names.keys().any(|k| k.starts_with("d/")) {
                    return;
                }
                fs.rmdir(ROOT, OsStr::new("d")).unwrap();
                model.live.names.remove("d");
            } else {
                fs.mkdir(ROOT, OsStr::new("d"), 0o755, 0, 0).unwrap();
                model.live.names.insert("d".to_string(), None);
            }
        }
        Step::FsyncFile(i) => {
            let p = PATHS[*i];
            if !matches!(model.live.names.get(p), Some(Some(_))) {
                return;
            }
            fsync(fs, p);
            model.fsync(p);
        }
        Step::FsyncDir => {
            fs.fsync(ROOT).unwrap();
            model.commit();
        }
        Step::Discard => {
            fs.discard(None).unwrap();
            model.discard();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn live_and_durable_state_follow_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        let backing = Backing::new("model");
        let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
        let mut model = Model::default();
        for (n, s) in steps.iter().enumerate() {
            apply(&mut fs, &mut model, s);
            prop_assert_eq!(live_tree(&mut fs), model.live.tree(), "live view after step {} {:?}", n, s);
        }
        // What a power failure leaves, on disk, and what the view shows after one.
        fs.discard(None).unwrap();
        model.discard();
        prop_assert_eq!(disk_tree(&backing.0), model.durable.tree());
        prop_assert_eq!(live_tree(&mut fs), model.durable.tree());
        prop_assert_eq!(fs.status().dirty_bytes, 0);
    }
}

// ---------------------------------------------------------------------------------------
// The rules, one by one.

#[test]
fn exactly_the_unsynced_writes_vanish() {
    let backing = Backing::new("records");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    create(&mut fs, "log");
    fs.fsync(ROOT).unwrap();
    let mut offset = 0;
    for i in 0..6u64 {
        let record = format!("record-{i};");
        write(&mut fs, "log", offset, record.as_bytes());
        offset += record.len() as u64;
        if i % 2 == 0 {
            fsync(&mut fs, "log");
        }
    }
    // Records 0..=4 were followed by an fsync (4 by its own); record 5 was not.
    let report = fs.discard(None).unwrap();
    assert_eq!(
        read_all(&mut fs, "log"),
        b"record-0;record-1;record-2;record-3;record-4;"
    );
    assert_eq!(report.dropped_bytes, "record-5;".len() as u64);
    assert_eq!(report.dropped_files, vec!["log".to_string()]);
    assert_eq!(report.dropped_metadata_ops, 0);
}

#[test]
fn a_file_created_and_never_synced_is_gone_and_a_committed_one_comes_back_empty() {
    let backing = Backing::new("create");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    create(&mut fs, "never");
    write(&mut fs, "never", 0, b"data");
    create(&mut fs, "committed");
    write(&mut fs, "committed", 0, b"data");
    create(&mut fs, "synced");
    write(&mut fs, "synced", 0, b"kept");
    // fsync of one file commits every creation, but only that file's data.
    fsync(&mut fs, "synced");
    create(&mut fs, "late");
    let report = fs.discard(None).unwrap();
    assert_eq!(read_all(&mut fs, "synced"), b"kept");
    assert_eq!(
        read_all(&mut fs, "committed"),
        b"",
        "delayed allocation: empty file"
    );
    assert_eq!(
        read_all(&mut fs, "never"),
        b"",
        "created before the fsync: committed too"
    );
    assert_eq!(resolve(&mut fs, "late"), Err(Errno::ENOENT));
    assert_eq!(report.metadata_ops, vec!["create late".to_string()]);
}

#[test]
fn an_unsynced_rename_is_undone_and_a_synced_directory_keeps_it() {
    let backing = Backing::new("rename");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    create(&mut fs, "tmp");
    write(&mut fs, "tmp", 0, b"v1");
    fsync(&mut fs, "tmp");
    fs.rename(ROOT, OsStr::new("tmp"), ROOT, OsStr::new("final"), 0)
        .unwrap();
    fs.discard(None).unwrap();
    assert_eq!(read_all(&mut fs, "tmp"), b"v1");
    assert_eq!(resolve(&mut fs, "final"), Err(Errno::ENOENT));

    fs.rename(ROOT, OsStr::new("tmp"), ROOT, OsStr::new("final"), 0)
        .unwrap();
    fs.fsync(ROOT).unwrap(); // fsync of the directory
    fs.discard(None).unwrap();
    assert_eq!(read_all(&mut fs, "final"), b"v1");
    assert_eq!(resolve(&mut fs, "tmp"), Err(Errno::ENOENT));
}

#[test]
fn an_unsynced_unlink_and_truncate_are_undone() {
    let backing = Backing::new("unlink");
    std::fs::write(backing.0.join("keep"), b"0123456789").unwrap();
    std::fs::write(backing.0.join("gone"), b"x").unwrap();
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    fs.unlink(ROOT, OsStr::new("gone")).unwrap();
    let keep = resolve(&mut fs, "keep").unwrap();
    let change = SetAttr {
        size: Some(4),
        ..SetAttr::default()
    };
    fs.setattr(keep, &change).unwrap();
    let change = SetAttr {
        size: Some(8),
        ..SetAttr::default()
    };
    fs.setattr(keep, &change).unwrap();
    assert_eq!(
        read_all(&mut fs, "keep"),
        b"0123\0\0\0\0",
        "extension after a cut reads zeros"
    );
    let report = fs.discard(None).unwrap();
    assert_eq!(report.dropped_metadata_ops, 3);
    assert_eq!(read_all(&mut fs, "keep"), b"0123456789");
    assert_eq!(read_all(&mut fs, "gone"), b"x");
}

#[test]
fn a_torn_discard_keeps_a_prefix_of_the_last_write_only() {
    let backing = Backing::new("torn");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    create(&mut fs, "wal");
    write(&mut fs, "wal", 0, b"synced;");
    fsync(&mut fs, "wal");
    write(&mut fs, "wal", 7, b"lost;");
    write(&mut fs, "wal", 12, b"torn-record");
    let report = fs
        .discard(Some(Torn {
            prefix_bytes: Some(4),
        }))
        .unwrap();
    assert_eq!(
        report.torn,
        Some(TornReport {
            file: "wal".into(),
            offset: 12,
            write_bytes: 11,
            kept_bytes: 4
        })
    );
    assert_eq!(report.dropped_bytes, 5 + 11 - 4);
    // The earlier unsynced write is gone: the durable file has a hole, then the prefix.
    assert_eq!(read_all(&mut fs, "wal"), b"synced;\0\0\0\0\0torn");

    // Default: never inside a sector. A write within one sector is whole or gone.
    write(&mut fs, "wal", 16, b"abcdef");
    let report = fs.discard(Some(Torn { prefix_bytes: None })).unwrap();
    assert_eq!(report.torn, None);
    assert_eq!(read_all(&mut fs, "wal"), b"synced;\0\0\0\0\0torn");
    // A write over sectors 0..3 from offset 100 is cut at the boundary nearest its middle.
    write(&mut fs, "wal", 100, &[7u8; 1400]);
    let report = fs.discard(Some(Torn { prefix_bytes: None })).unwrap();
    assert_eq!(report.torn.unwrap().kept_bytes, 1024 - 100);
    let after = read_all(&mut fs, "wal");
    assert_eq!(after.len(), 1024);
    assert!(after[100..].iter().all(|b| *b == 7));
    write(&mut fs, "wal", 0, b"S");
    fsync(&mut fs, "wal");
    let report = fs.discard(Some(Torn { prefix_bytes: None })).unwrap();
    assert_eq!(report.torn, None);
    assert_eq!(report.dropped_bytes, 0);
}

#[test]
fn a_torn_write_to_a_file_never_made_durable_keeps_nothing() {
    let backing = Backing::new("torn-new");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    create(&mut fs, "new");
    write(&mut fs, "new", 0, b"bytes");
    let report = fs
        .discard(Some(Torn {
            prefix_bytes: Some(2),
        }))
        .unwrap();
    assert_eq!(report.torn, None);
    assert_eq!(resolve(&mut fs, "new"), Err(Errno::ENOENT));
}

#[test]
fn hard_links_share_data_and_an_unsynced_link_is_undone() {
    let backing = Backing::new("link");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    let ino = create(&mut fs, "a");
    write(&mut fs, "a", 0, b"shared");
    fs.link(ino, ROOT, OsStr::new("b")).unwrap();
    assert_eq!(read_all(&mut fs, "b"), b"shared");
    assert_eq!(fs.attr(ino).unwrap().nlink, 2);
    fsync(&mut fs, "b");
    fs.link(ino, ROOT, OsStr::new("c")).unwrap();
    fs.discard(None).unwrap();
    assert_eq!(read_all(&mut fs, "a"), b"shared");
    assert_eq!(read_all(&mut fs, "b"), b"shared");
    assert_eq!(resolve(&mut fs, "c"), Err(Errno::ENOENT));
    // Loaded back as one inode with two names.
    let a = resolve(&mut fs, "a").unwrap();
    assert_eq!(resolve(&mut fs, "b").unwrap(), a);
}

#[test]
fn symlinks_and_directories_survive_once_committed() {
    let backing = Backing::new("symlink");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    let d = fs.mkdir(ROOT, OsStr::new("d"), 0o750, 0, 0).unwrap().ino;
    fs.symlink(d, OsStr::new("l"), OsStr::new("../target"), 0, 0)
        .unwrap();
    fs.fsync(d).unwrap();
    fs.mkdir(ROOT, OsStr::new("e"), 0o755, 0, 0).unwrap();
    fs.discard(None).unwrap();
    let d = resolve(&mut fs, "d").unwrap();
    assert_eq!(fs.attr(d).unwrap().perm, 0o750);
    let l = resolve(&mut fs, "d/l").unwrap();
    assert_eq!(fs.readlink(l).unwrap(), OsString::from("../target"));
    assert_eq!(resolve(&mut fs, "e"), Err(Errno::ENOENT));
}

#[test]
fn sockets_and_fifos_are_metadata_ops_like_files_and_devices_are_refused() {
    use std::os::unix::fs::FileTypeExt;
    let backing = Backing::new("special");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    let d = fs.mkdir(ROOT, OsStr::new("d"), 0o700, 0, 0).unwrap().ino;
    let sock = fs
        .mknod(d, OsStr::new("s"), Kind::Socket, 0o777, 0, 0)
        .unwrap();
    assert_eq!((sock.kind, sock.size, sock.perm), (Kind::Socket, 0, 0o777));
    fs.mknod(d, OsStr::new("p"), Kind::Fifo, 0o600, 0, 0)
        .unwrap();
    assert_eq!(fs.read(sock.ino, 0, 10), Err(Errno::EINVAL));
    fs.fsync(d).unwrap();
    fs.mknod(ROOT, OsStr::new("lost"), Kind::Fifo, 0o600, 0, 0)
        .unwrap();
    assert_eq!(
        fs.mknod(ROOT, OsStr::new("dev"), Kind::File, 0o600, 0, 0),
        Err(Errno::EPERM)
    );
    let report = fs.discard(None).unwrap();
    assert_eq!(report.metadata_ops, vec!["mknod lost"]);
    assert_eq!(resolve(&mut fs, "lost"), Err(Errno::ENOENT));
    // Committed ones exist in the backing directory and are loaded back as what they are.
    let on_disk = |name: &str| std::fs::symlink_metadata(backing.0.join(name)).unwrap();
    assert!(on_disk("d/s").file_type().is_socket());
    assert!(on_disk("d/p").file_type().is_fifo());
    let s = resolve(&mut fs, "d/s").unwrap();
    assert_eq!(fs.attr(s).unwrap().kind, Kind::Socket);
    let p = resolve(&mut fs, "d/p").unwrap();
    assert_eq!(
        (fs.attr(p).unwrap().kind, fs.attr(p).unwrap().perm),
        (Kind::Fifo, 0o600)
    );
}

#[test]
fn old_inode_numbers_are_stale_after_a_discard() {
    let backing = Backing::new("stale");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    let ino = create(&mut fs, "f");
    fs.fsync(ino).unwrap();
    fs.discard(None).unwrap();
    assert_eq!(fs.attr(ino), Err(Errno::ESTALE));
    assert_ne!(resolve(&mut fs, "f").unwrap(), ino);
}

#[test]
fn too_many_dirty_bytes_write_everything_back() {
    let backing = Backing::new("pressure");
    let mut fs = LazyFs::open(&backing.0, 100).unwrap();
    create(&mut fs, "f");
    write(&mut fs, "f", 0, &[7; 60]);
    assert_eq!(fs.status().writebacks, 0);
    write(&mut fs, "f", 60, &[8; 60]);
    assert_eq!(fs.status().writebacks, 1);
    assert_eq!(fs.status().dirty_bytes, 0);
    let report = fs.discard(None).unwrap();
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(read_all(&mut fs, "f").len(), 120);
}

#[test]
fn rename_refuses_what_posix_refuses() {
    let backing = Backing::new("rename-errors");
    let mut fs = LazyFs::open(&backing.0, DEFAULT_MAX_DIRTY_BYTES).unwrap();
    let d = fs.mkdir(ROOT, OsStr::new("d"), 0o755, 0, 0).unwrap().ino;
    let sub = fs.mkdir(d, OsStr::new("sub"), 0o755, 0, 0).unwrap().ino;
    create(&mut fs, "f");
    create(&mut fs, "d/sub/g");
    let n = |s: &str| OsString::from(s);
    assert_eq!(
        fs.rename(ROOT, &n("d"), sub, &n("x"), 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fs.rename(ROOT, &n("f"), ROOT, &n("d"), 0),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        fs.rename(ROOT, &n("d"), ROOT, &n("f"), 0),
        Err(Errno::ENOTDIR)
    );
    // Onto its own (non-empty) parent: Linux says ENOTEMPTY.
    assert_eq!(
        fs.rename(d, &n("sub"), ROOT, &n("d"), 0),
        Err(Errno::ENOTEMPTY)
    );
    assert_eq!(
        fs.rename(ROOT, &n("f"), sub, &n("g"), libc::RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    fs.rename(ROOT, &n("f"), sub, &n("g"), libc::RENAME_EXCHANGE)
        .unwrap();
    fs.fsync(ROOT).unwrap();
    fs.discard(None).unwrap();
    assert!(resolve(&mut fs, "f").is_ok());
    assert!(resolve(&mut fs, "d/sub/g").is_ok());
    assert_eq!(fs.rmdir(ROOT, &n("d")), Err(Errno::ENOTEMPTY));
}

#[test]
fn a_default_tear_ends_on_a_sector_boundary_inside_the_write() {
    assert_eq!(sector_prefix(0, 512), None);
    assert_eq!(sector_prefix(10, 400), None);
    assert_eq!(sector_prefix(500, 20), Some(12));
    assert_eq!(sector_prefix(0, 1024), Some(512));
    assert_eq!(sector_prefix(0, 4096), Some(2048));
    assert_eq!(sector_prefix(100, 1400), Some(924));
    for offset in [0u64, 1, 511, 512, 513, 4000] {
        for len in [1u64, 2, 511, 512, 513, 1023, 1025, 5000] {
            if let Some(keep) = sector_prefix(offset, len) {
                assert!(keep > 0 && keep < len, "{offset}+{len} keeps {keep}");
                assert_eq!((offset + keep) % SECTOR_BYTES, 0, "{offset}+{len}");
            } else {
                assert_eq!(offset / SECTOR_BYTES, (offset + len - 1) / SECTOR_BYTES);
            }
        }
    }
}
