//! The filesystem itself, without FUSE: a live view of a backing directory in which
//! everything not yet made durable lives in memory, and the rules that make it durable.
//!
//! The backing directory holds exactly what survives a power failure. The live view is
//! that plus, in memory:
//! - **file data** written since the file's last fsync ([`Extents`] per inode, byte exact);
//! - **metadata operations** not yet committed: create, mkdir, symlink, link, unlink,
//!   rmdir, rename, truncate/size changes, chmod, chown — kept in order in a journal.
//!
//! Durability, modelled on Linux ext4 with its defaults (`data=ordered`, one jbd2 journal,
//! no `fast_commit`), in its worst case (no periodic 5 s commit or 30 s writeback
//! happened before the failure):
//! - `fsync`, `fdatasync` and `fsync` of a directory commit the whole journal — every
//!   pending metadata operation of every file, in order, the way one jbd2 commit does —
//!   and then write that one file's dirty data and size. Other files' data stays dirty.
//!   (ext4's `fdatasync` skips the commit only for a pure overwrite that changed no
//!   metadata; we always commit, so we never lose more than ext4 could.)
//! - A file whose creation committed but whose data did not comes back empty (or at its
//!   old length): ext4's delayed allocation does exactly that.
//! - `close` makes nothing durable (ext4 does not sync on close). ext4's `auto_da_alloc`
//!   heuristic (start writeback when a file replaces another by rename, or is truncated
//!   to zero and closed) is not modelled: such data is lost unless fsynced, as POSIX
//!   allows and other filesystems do.
//! - A write through a descriptor opened with `O_SYNC`/`O_DSYNC` is fsynced at once (the
//!   FUSE adapter does that).
//! - Writing back because of memory pressure: when more than `max_dirty_bytes` are dirty
//!   the whole state is checkpointed (committed and flushed), as a kernel under memory
//!   pressure would; the status counts it (`writebacks`).
//! - A clean unmount (SIGTERM) checkpoints everything first, like `umount` does.
//!
//! [`LazyFs::discard`] is the power failure: it drops every dirty byte and every pending
//! metadata operation and reloads the live view from the backing directory; with a torn
//! write, a prefix of the last write (when still unsynced and its file exists durably) is
//! written to the backing file first, cut at a 512-byte sector boundary unless the caller
//! names the exact length (disks write a sector whole or not at all). Timestamps are kept
//! in memory only.
//!
//! Durable means "in the backing directory": the emulation does not fsync the backing
//! filesystem itself, so it simulates a power failure, it does not survive a real one.
//! Special files (devices, FIFOs, sockets) are neither shown nor creatable.

use crate::extents::Extents;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub type Ino = u64;
/// FUSE's root inode number.
pub const ROOT: Ino = 1;
pub type FsResult<T> = Result<T, Errno>;

/// Default bound on dirty bytes before a writeback checkpoint.
pub const DEFAULT_MAX_DIRTY_BYTES: u64 = 1 << 30;
/// Bound on pending metadata operations before a writeback checkpoint.
const MAX_PENDING_OPS: usize = 1_000_000;
/// Deepest directory nesting loaded from the backing directory.
const MAX_DEPTH: usize = 128;
/// At most this many paths are listed in a discard report (the counts are exact).
const MAX_REPORTED: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A Unix socket's name (what `bind` creates; PostgreSQL keeps one in its data dir).
    Socket,
    Fifo,
}

/// What `getattr` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

struct FileData {
    size: u64,
    dirty: Extents,
    /// Bytes of the durable file at or beyond this offset are not part of the live
    /// content (a truncate cut them; later extension reads zeros there).
    base_cut: Option<u64>,
}

impl FileData {
    fn needs_flush(&self) -> bool {
        !self.dirty.is_empty() || self.base_cut.is_some()
    }
}

enum Node {
    File(FileData),
    Dir(BTreeMap<OsString, Ino>),
    Symlink(OsString),
    /// A socket or FIFO: no data, addressed by name like a symlink.
    Special(Kind),
}

struct Inode {
    node: Node,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Live names: (directory, name). A directory has one (the root none).
    links: BTreeSet<(Ino, OsString)>,
    /// References the kernel holds (lookups minus forgets).
    lookups: u64,
    /// The inode in the backing directory, once its creation is durable. Symlinks, sockets
    /// and FIFOs have none (they are addressed by name).
    durable: Option<File>,
}

impl Inode {
    fn kind(&self) -> Kind {
        match self.node {
            Node::File(_) => Kind::File,
            Node::Dir(_) => Kind::Dir,
            Node::Symlink(_) => Kind::Symlink,
            Node::Special(kind) => kind,
        }
    }
}

/// One pending metadata operation, named by inode numbers so that replaying the journal in
/// order on the backing directory reproduces the live namespace as of the commit.
#[derive(Clone, Debug)]
enum MetaOp {
    Create {
        parent: Ino,
        name: OsString,
        ino: Ino,
        perm: u16,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        parent: Ino,
        name: OsString,
        ino: Ino,
        perm: u16,
        uid: u32,
        gid: u32,
    },
    Symlink {
        parent: Ino,
        name: OsString,
        target: OsString,
        uid: u32,
        gid: u32,
    },
    Mknod {
        parent: Ino,
        name: OsString,
        kind: Kind,
        perm: u16,
        uid: u32,
        gid: u32,
    },
    Link {
        from_parent: Ino,
        from_name: OsString,
        parent: Ino,
        name: OsString,
    },
    Unlink {
        parent: Ino,
        name: OsString,
        dir: bool,
    },
    Rename {
        parent: Ino,
        name: OsString,
        new_parent: Ino,
        new_name: OsString,
        flags: u32,
    },
    SetLen {
        ino: Ino,
        len: u64,
    },
    Chmod {
        ino: Ino,
        perm: u16,
    },
    Chown {
        ino: Ino,
        uid: u32,
        gid: u32,
    },
}

/// Disks write a 512-byte sector whole or not at all; a power failure tears a write only
/// at a sector boundary of its file. Storage engines rely on that (etcd's WAL tells a torn
/// record from a corrupt one by a zeroed sector), so a default tear never splits a sector.
pub const SECTOR_BYTES: u64 = 512;

/// Which bytes of the last write survive a torn discard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Torn {
    /// Bytes of the write's prefix to keep, exactly (a tear inside a sector, beyond what a
    /// disk does, when the caller asks for one). `None` keeps the prefix that ends at the
    /// sector boundary nearest the write's middle; a write within one sector is not torn.
    /// Always fewer than the write had (a write kept whole is not torn).
    pub prefix_bytes: Option<u64>,
}

/// The default tear of a write of `len` bytes at `offset`: the prefix ending at the
/// sector boundary strictly inside the write that is nearest its middle, or `None` when
/// the write has no sector boundary inside it.
fn sector_prefix(offset: u64, len: u64) -> Option<u64> {
    let first = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
    let end = offset + len;
    if first >= end {
        return None;
    }
    let middle = offset + len / 2;
    let below = (middle / SECTOR_BYTES * SECTOR_BYTES).max(first);
    let above = below + SECTOR_BYTES;
    let cut = if above < end && above - middle < middle - below {
        above
    } else {
        below
    };
    Some(cut - offset)
}

/// What a torn discard kept of the last write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TornReport {
    pub file: String,
    pub offset: u64,
    pub write_bytes: u64,
    pub kept_bytes: u64,
}

/// What [`LazyFs::discard`] dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiscardReport {
    /// Dirty bytes dropped, over all files.
    pub dropped_bytes: u64,
    /// Files that lost data (dirty bytes or an uncommitted truncate).
    pub dropped_file_count: usize,
    /// Their paths (relative to the mount), at most 50.
    pub dropped_files: Vec<String>,
    /// Metadata operations dropped.
    pub dropped_metadata_ops: usize,
    /// Them, in order, at most 50 (`create wal.log`, `rename a -> b`).
    pub metadata_ops: Vec<String>,
    /// With a torn discard: what was kept of the last write, or `None` when there was no
    /// unsynced write to tear (or its file was never made durable).
    pub torn: Option<TornReport>,
}

/// Counters for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub dirty_bytes: u64,
    pub dirty_files: usize,
    pub pending_metadata_ops: usize,
    pub fsyncs: u64,
    pub discards: u64,
    pub writebacks: u64,
}

/// What a setattr changes; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

pub struct LazyFs {
    backing: PathBuf,
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    journal: Vec<(MetaOp, String)>,
    /// The most recent write, while its file has not been fsynced since: (ino, offset, len).
    last_write: Option<(Ino, u64, u64)>,
    dirty_total: u64,
    max_dirty_bytes: u64,
    status: Status,
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// Gives the entry `name` of the directory `dir_fd` its owner (a symlink itself, not
/// what it points to).
fn chown_entry(dir_fd: RawFd, name: &OsStr, uid: u32, gid: u32) -> FsResult<()> {
    nix::unistd::fchownat(
        Some(dir_fd),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

fn file_from(fd: RawFd) -> File {
    // SAFETY: `fd` was just returned by a successful open call and is owned by nobody else.
    unsafe { File::from_raw_fd(fd) }
}

fn time_of(sec: i64, nsec: i64) -> SystemTime {
    let d = std::time::Duration::new(sec.unsigned_abs(), nsec.clamp(0, 999_999_999) as u32);
    if sec >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

/// Reads as much of `buf` as the file has at `offset`; the rest is left as it was.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> FsResult<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_errno(&e)),
        }
    }
    Ok(())
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

fn valid_name(name: &OsStr) -> FsResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl LazyFs {
    /// Serves `backing`, which must be a directory; its content is the durable state.
    pub fn open(backing: &Path, max_dirty_bytes: u64) -> FsResult<LazyFs> {
        let mut fs = LazyFs {
            backing: backing.to_path_buf(),
            inodes: HashMap::new(),
            next_ino: ROOT + 1,
            journal: Vec::new(),
            last_write: None,
            dirty_total: 0,
            max_dirty_bytes: max_dirty_bytes.max(1),
            status: Status::default(),
        };
        fs.load()?;
        Ok(fs)
    }

    /// (Re)builds the live view from the backing directory. Inode numbers are never reused,
    /// so a kernel still holding one from before gets `ESTALE`, not another file.
    fn load(&mut self) -> FsResult<()> {
        self.inodes.clear();
        self.journal.clear();
        self.last_write = None;
        self.dirty_total = 0;
        let root_fd = nix::fcntl::open(
            &self.backing,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let root_file = file_from(root_fd);
        let st = nix::sys::stat::fstat(root_fd)?;
        let root = self.inode_from_stat(&st, Node::Dir(BTreeMap::new()), Some(root_file));
        self.inodes.insert(ROOT, root);
        // By (st_dev, st_ino): hard links in the backing directory are one live inode.
        let mut seen: HashMap<(u64, u64), Ino> = HashMap::new();
        let mut stack: Vec<(Ino, usize)> = vec![(ROOT, 0)];
        while let Some((dir_ino, depth)) = stack.pop() {
            if depth >= MAX_DEPTH {
                return Err(Errno::ELOOP);
            }
            let dir_fd = self.fd_of(dir_ino)?;
            let names = list_dir(dir_fd)?;
            for name in names {
                let st = nix::sys::stat::fstatat(
                    Some(dir_fd),
                    name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
                let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
                let key = (st.st_dev, st.st_ino);
                if fmt == SFlag::S_IFREG {
                    if let Some(&ino) = seen.get(&key) {
                        self.inodes
                            .get_mut(&ino)
                            .expect("seen")
                            .links
                            .insert((dir_ino, name.clone()));
                        self.dir_mut(dir_ino)?.insert(name, ino);
                        continue;
                    }
                }
                let (node, durable) = if fmt == SFlag::S_IFREG {
                    let fd = nix::fcntl::openat(
                        Some(dir_fd),
                        name.as_os_str(),
                        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    let data = FileData {
                        size: st.st_size as u64,
                        dirty: Extents::default(),
                        base_cut: None,
                    };
                    (Node::File(data), Some(file_from(fd)))
                } else if fmt == SFlag::S_IFDIR {
                    let fd = nix::fcntl::openat(
                        Some(dir_fd),
                        name.as_os_str(),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    (Node::Dir(BTreeMap::new()), Some(file_from(fd)))
                } else if fmt == SFlag::S_IFLNK {
                    (
                        Node::Symlink(nix::fcntl::readlinkat(Some(dir_fd), name.as_os_str())?),
                        None,
                    )
                } else if fmt == SFlag::S_IFSOCK {
                    (Node::Special(Kind::Socket), None)
                } else if fmt == SFlag::S_IFIFO {
                    (Node::Special(Kind::Fifo), None)
                } else {
                    continue; // devices: not served
                };
                let is_dir = matches!(node, Node::Dir(_));
                let mut inode = self.inode_from_stat(&st, node, durable);
                inode.links.insert((dir_ino, name.clone()));
                let ino = self.alloc_ino();
                self.inodes.insert(ino, inode);
                self.dir_mut(dir_ino)?.insert(name, ino);
                if fmt == SFlag::S_IFREG {
                    seen.insert(key, ino);
                }
                if is_dir {
                    stack.push((ino, depth + 1));
                }
            }
        }
        Ok(())
    }

    fn inode_from_stat(
        &self,
        st: &nix::sys::stat::FileStat,
        node: Node,
        durable: Option<File>,
    ) -> Inode {
        Inode {
            node,
            perm: (st.st_mode & 0o7777) as u16,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: time_of(st.st_atime, st.st_atime_nsec),
            mtime: time_of(st.st_mtime, st.st_mtime_nsec),
            ctime: time_of(st.st_ctime, st.st_ctime_nsec),
            links: BTreeSet::new(),
            lookups: 0,
            durable,
        }
    }

    fn alloc_ino(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn inode(&self, ino: Ino) -> FsResult<&Inode> {
        self.inodes.get(&ino).ok_or(Errno::ESTALE)
    }

    fn inode_mut(&mut self, ino: Ino) -> FsResult<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(Errno::ESTALE)
    }

    fn dir(&self, ino: Ino) -> FsResult<&BTreeMap<OsString, Ino>> {
        match &self.inode(ino)?.node {
            Node::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> FsResult<&mut BTreeMap<OsString, Ino>> {
        match &mut self.inode_mut(ino)?.node {
            Node::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file(&self, ino: Ino) -> FsResult<&FileData> {
        match &self.inode(ino)?.node {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(Errno::EISDIR),
            Node::Symlink(_) | Node::Special(_) => Err(Errno::EINVAL),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> FsResult<&mut FileData> {
        match &mut self.inode_mut(ino)?.node {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(Errno::EISDIR),
            Node::Symlink(_) | Node::Special(_) => Err(Errno::EINVAL),
        }
    }

    /// The backing descriptor of a durable file or directory.
    fn fd_of(&self, ino: Ino) -> FsResult<RawFd> {
        self.inode(ino)?
            .durable
            .as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or(Errno::EIO)
    }

    /// A path of `ino` relative to the mount, for reports; `(unlinked)` when it has none.
    pub fn path_of(&self, ino: Ino) -> String {
        let mut parts: Vec<OsString> = Vec::new();
        let mut at = ino;
        for _ in 0..MAX_DEPTH {
            if at == ROOT {
                let bytes: Vec<u8> = parts
                    .iter()
                    .rev()
                    .map(|p| p.as_bytes())
                    .collect::<Vec<_>>()
                    .join(&b'/');
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            let Some((parent, name)) = self.inodes.get(&at).and_then(|i| i.links.iter().next())
            else {
                break;
            };
            parts.push(name.clone());
            at = *parent;
        }
        "(unlinked)".to_string()
    }

    fn describe(&self, parent: Ino, name: &OsStr) -> String {
        let dir = self.path_of(parent);
        let name = name.to_string_lossy();
        if dir.is_empty() {
            name.into_owned()
        } else {
            format!("{dir}/{name}")
        }
    }

    pub fn attr(&self, ino: Ino) -> FsResult<Attr> {
        let inode = self.inode(ino)?;
        let (size, nlink) = match &inode.node {
            Node::File(f) => (f.size, inode.links.len() as u32),
            Node::Dir(entries) => {
                let subdirs = entries
                    .values()
                    .filter(|i| {
                        self.inodes
                            .get(i)
                            .is_some_and(|n| matches!(n.node, Node::Dir(_)))
                    })
                    .count();
                (4096, 2 + subdirs as u32)
            }
            Node::Symlink(target) => (target.len() as u64, inode.links.len() as u32),
            Node::Special(_) => (0, inode.links.len() as u32),
        };
        Ok(Attr {
            ino,
            kind: inode.kind(),
            size,
            perm: inode.perm,
            nlink,
            uid: inode.uid,
            gid: inode.gid,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
        })
    }

    /// Looks `name` up in `parent` and counts a kernel reference to the result.
    pub fn lookup(&mut self, parent: Ino, name: &OsStr) -> FsResult<Attr> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        self.inode_mut(ino)?.lookups += 1;
        self.attr(ino)
    }

    /// Drops `n` kernel references; an inode with neither names nor references goes.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        inode.lookups = inode.lookups.saturating_sub(n);
        if ino != ROOT && inode.lookups == 0 && inode.links.is_empty() {
            if let Some(gone) = self.inodes.remove(&ino) {
                if let Node::File(f) = gone.node {
                    self.dirty_total -= f.dirty.bytes();
                }
            }
            if self.last_write.is_some_and(|(i, _, _)| i == ino) {
                self.last_write = None;
            }
        }
    }

    pub fn readlink(&self, ino: Ino) -> FsResult<OsString> {
        match &self.inode(ino)?.node {
            Node::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The entries of a directory, `.` and `..` first.
    pub fn readdir(&self, ino: Ino) -> FsResult<Vec<(Ino, Kind, OsString)>> {
        let entries = self.dir(ino)?;
        let parent = self
            .inode(ino)?
            .links
            .iter()
            .next()
            .map(|(p, _)| *p)
            .unwrap_or(ROOT);
        let mut out = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, child) in entries {
            let kind = self.inode(*child)?.kind();
            out.push((*child, kind, name.clone()));
        }
        Ok(out)
    }

    fn add_entry(
        &mut self,
        parent: Ino,
        name: &OsStr,
        node: Node,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino> {
        valid_name(name)?;
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let t = now();
        let ino = self.alloc_ino();
        let mut links = BTreeSet::new();
        links.insert((parent, name.to_os_string()));
        self.inodes.insert(
            ino,
            Inode {
                node,
                perm,
                uid,
                gid,
                atime: t,
                mtime: t,
                ctime: t,
                links,
                lookups: 1,
                durable: None,
            },
        );
        self.dir_mut(parent)?.insert(name.to_os_string(), ino);
        let dir = self.inode_mut(parent)?;
        dir.mtime = t;
        dir.ctime = t;
        Ok(ino)
    }

    fn record(&mut self, op: MetaOp, what: String) -> FsResult<()> {
        self.journal.push((op, what));
        if self.journal.len() > MAX_PENDING_OPS {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Creates an empty regular file; counts a kernel reference.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let data = FileData {
            size: 0,
            dirty: Extents::default(),
            base_cut: None,
        };
        self.make(parent, name, Node::File(data), perm, uid, gid)
    }

    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.make(parent, name, Node::Dir(BTreeMap::new()), perm, uid, gid)
    }

    /// Adds a new file or directory and journals its creation.
    fn make(
        &mut self,
        parent: Ino,
        name: &OsStr,
        node: Node,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let dir = matches!(node, Node::Dir(_));
        let perm = perm & 0o7777;
        let ino = self.add_entry(parent, name, node, perm, uid, gid)?;
        let (verb, name) = (if dir { "mkdir" } else { "create" }, name.to_os_string());
        let what = format!("{verb} {}", self.describe(parent, &name));
        let op = if dir {
            MetaOp::Mkdir {
                parent,
                name,
                ino,
                perm,
                uid,
                gid,
            }
        } else {
            MetaOp::Create {
                parent,
                name,
                ino,
                perm,
                uid,
                gid,
            }
        };
        self.record(op, what)?;
        self.attr(ino)
    }

    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &OsStr,
        target: &OsStr,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let ino = self.add_entry(
            parent,
            name,
            Node::Symlink(target.to_os_string()),
            0o777,
            uid,
            gid,
        )?;
        let what = format!("symlink {}", self.describe(parent, name));
        let op = MetaOp::Symlink {
            parent,
            name: name.to_os_string(),
            target: target.to_os_string(),
            uid,
            gid,
        };
        self.record(op, what)?;
        self.attr(ino)
    }

    /// A socket or FIFO (`kind`); counts a kernel reference. Its creation is a metadata
    /// op like any other: durable once its directory is fsynced.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        if !matches!(kind, Kind::Socket | Kind::Fifo) {
            return Err(Errno::EPERM);
        }
        let perm = perm & 0o7777;
        let ino = self.add_entry(parent, name, Node::Special(kind), perm, uid, gid)?;
        let what = format!("mknod {}", self.describe(parent, name));
        let op = MetaOp::Mknod {
            parent,
            name: name.to_os_string(),
            kind,
            perm,
            uid,
            gid,
        };
        self.record(op, what)?;
        self.attr(ino)
    }

    /// A new name for an existing file; counts a kernel reference.
    pub fn link(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> FsResult<Attr> {
        valid_name(name)?;
        let inode = self.inode(ino)?;
        if matches!(inode.node, Node::Dir(_)) {
            return Err(Errno::EPERM);
        }
        let (from_parent, from_name) = inode.links.iter().next().cloned().ok_or(Errno::ENOENT)?;
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.dir_mut(parent)?.insert(name.to_os_string(), ino);
        let t = now();
        let inode = self.inode_mut(ino)?;
        inode.links.insert((parent, name.to_os_string()));
        inode.lookups += 1;
        inode.ctime = t;
        let what = format!(
            "link {} -> {}",
            self.describe(from_parent, &from_name),
            self.describe(parent, name)
        );
        self.record(
            MetaOp::Link {
                from_parent,
                from_name,
                parent,
                name: name.to_os_string(),
            },
            what,
        )?;
        self.attr(ino)
    }

    /// Removes the name `name` from `parent` in the live view (no journal entry).
    fn detach(&mut self, parent: Ino, name: &OsStr) -> FsResult<Ino> {
        let ino = self.dir_mut(parent)?.remove(name).ok_or(Errno::ENOENT)?;
        let t = now();
        let inode = self.inode_mut(ino)?;
        inode.links.remove(&(parent, name.to_os_string()));
        inode.ctime = t;
        let dir = self.inode_mut(parent)?;
        dir.mtime = t;
        dir.ctime = t;
        self.forget(ino, 0);
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        if matches!(self.inode(ino)?.node, Node::Dir(_)) {
            return Err(Errno::EISDIR);
        }
        let what = format!("unlink {}", self.describe(parent, name));
        self.detach(parent, name)?;
        self.record(
            MetaOp::Unlink {
                parent,
                name: name.to_os_string(),
                dir: false,
            },
            what,
        )
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        if !self.dir(ino)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        let what = format!("rmdir {}", self.describe(parent, name));
        self.detach(parent, name)?;
        self.record(
            MetaOp::Unlink {
                parent,
                name: name.to_os_string(),
                dir: true,
            },
            what,
        )
    }

    /// True when `ancestor` is `ino` or one of its parent directories.
    fn is_ancestor(&self, ancestor: Ino, mut ino: Ino) -> bool {
        for _ in 0..MAX_DEPTH {
            if ino == ancestor {
                return true;
            }
            match self.inodes.get(&ino).and_then(|i| i.links.iter().next()) {
                Some((parent, _)) => ino = *parent,
                None => return false,
            }
        }
        false
    }

    /// rename(2)/renameat2(2) with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        valid_name(new_name)?;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 || (noreplace && exchange)
        {
            return Err(Errno::EINVAL);
        }
        let src = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let dst = self.dir(new_parent)?.get(new_name).copied();
        let src_is_dir = matches!(self.inode(src)?.node, Node::Dir(_));
        if src_is_dir && self.is_ancestor(src, new_parent) {
            return Err(Errno::EINVAL);
        }
        let what = format!(
            "rename {} -> {}",
            self.describe(parent, name),
            self.describe(new_parent, new_name)
        );
        if exchange {
            let dst = dst.ok_or(Errno::ENOENT)?;
            if matches!(self.inode(dst)?.node, Node::Dir(_)) && self.is_ancestor(dst, parent) {
                return Err(Errno::EINVAL);
            }
            self.dir_mut(parent)?.insert(name.to_os_string(), dst);
            self.dir_mut(new_parent)?
                .insert(new_name.to_os_string(), src);
            let s = self.inode_mut(src)?;
            s.links.remove(&(parent, name.to_os_string()));
            s.links.insert((new_parent, new_name.to_os_string()));
            let d = self.inode_mut(dst)?;
            d.links.remove(&(new_parent, new_name.to_os_string()));
            d.links.insert((parent, name.to_os_string()));
        } else {
            if let Some(dst) = dst {
                if noreplace {
                    return Err(Errno::EEXIST);
                }
                if dst == src {
                    return Ok(()); // two names of one file: rename does nothing
                }
                match (src_is_dir, matches!(self.inode(dst)?.node, Node::Dir(_))) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) if !self.dir(dst)?.is_empty() => return Err(Errno::ENOTEMPTY),
                    _ => {}
                }
                self.detach(new_parent, new_name)?;
            }
            self.dir_mut(parent)?.remove(name);
            self.dir_mut(new_parent)?
                .insert(new_name.to_os_string(), src);
            let s = self.inode_mut(src)?;
            s.links.remove(&(parent, name.to_os_string()));
            s.links.insert((new_parent, new_name.to_os_string()));
        }
        let t = now();
        for ino in [parent, new_parent, src] {
            let i = self.inode_mut(ino)?;
            i.ctime = t;
            if ino != src {
                i.mtime = t;
            }
        }
        let op = MetaOp::Rename {
            parent,
            name: name.to_os_string(),
            new_parent,
            new_name: new_name.to_os_string(),
            flags,
        };
        self.record(op, what)
    }

    /// chmod, chown and truncate (setattr); times are kept in memory only.
    pub fn setattr(&mut self, ino: Ino, change: &SetAttr) -> FsResult<Attr> {
        let SetAttr {
            perm,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = *change;
        if let Some(len) = size {
            self.set_len(ino, len)?;
        }
        let t = now();
        let what = self.path_of(ino);
        if let Some(perm) = perm {
            let inode = self.inode_mut(ino)?;
            inode.perm = perm & 0o7777;
            inode.ctime = t;
            self.record(
                MetaOp::Chmod {
                    ino,
                    perm: perm & 0o7777,
                },
                format!("chmod {what}"),
            )?;
        }
        if uid.is_some() || gid.is_some() {
            let inode = self.inode_mut(ino)?;
            let (u, g) = (uid.unwrap_or(inode.uid), gid.unwrap_or(inode.gid));
            inode.uid = u;
            inode.gid = g;
            inode.ctime = t;
            self.record(
                MetaOp::Chown {
                    ino,
                    uid: u,
                    gid: g,
                },
                format!("chown {what}"),
            )?;
        }
        let inode = self.inode_mut(ino)?;
        if let Some(a) = atime {
            inode.atime = a;
        }
        if let Some(m) = mtime {
            inode.mtime = m;
        }
        self.attr(ino)
    }

    /// truncate(2): a metadata operation (journaled), which also cuts the dirty bytes.
    fn set_len(&mut self, ino: Ino, len: u64) -> FsResult<()> {
        let what = format!("truncate {} to {len}", self.path_of(ino));
        let f = self.file_mut(ino)?;
        let before = f.dirty.bytes();
        f.dirty.truncate(len);
        let dropped = before - f.dirty.bytes();
        if len < f.size {
            f.base_cut = Some(f.base_cut.map_or(len, |c| c.min(len)));
        }
        f.size = len;
        self.dirty_total -= dropped;
        let t = now();
        let inode = self.inode_mut(ino)?;
        inode.mtime = t;
        inode.ctime = t;
        self.record(MetaOp::SetLen { ino, len }, what)
    }

    /// fallocate(2): mode 0 extends the size (a metadata operation), `KEEP_SIZE` does
    /// nothing visible, `PUNCH_HOLE | KEEP_SIZE` writes zeros (dirty data).
    pub fn fallocate(&mut self, ino: Ino, offset: u64, len: u64, mode: i32) -> FsResult<()> {
        let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
        let size = self.file(ino)?.size;
        match mode {
            0 if end > size => self.set_len(ino, end),
            0 => Ok(()),
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                let end = end.min(size);
                if end > offset {
                    self.write(ino, offset, &vec![0u8; (end - offset) as usize])
                        .map(drop)
                } else {
                    Ok(())
                }
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let f = self.file(ino)?;
        let end = offset.saturating_add(u64::from(size)).min(f.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        if let Some(durable) = &self.inode(ino)?.durable {
            let base_end = end.min(f.base_cut.unwrap_or(u64::MAX));
            if offset < base_end {
                read_full_at(durable, &mut buf[..(base_end - offset) as usize], offset)?;
            }
        }
        f.dirty.overlay(offset, &mut buf);
        Ok(buf)
    }

    /// Buffers `data` at `offset`; nothing reaches the backing directory.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<u32> {
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        let before = f.dirty.bytes();
        f.dirty.write(offset, data);
        f.size = f.size.max(end);
        let added = f.dirty.bytes() - before;
        self.dirty_total += added;
        let t = now();
        let inode = self.inode_mut(ino)?;
        inode.mtime = t;
        inode.ctime = t;
        if !data.is_empty() {
            self.last_write = Some((ino, offset, data.len() as u64));
        }
        if self.dirty_total > self.max_dirty_bytes {
            self.checkpoint()?;
        }
        Ok(data.len() as u32)
    }

    /// fsync(2), fdatasync(2) of a file, or fsync of a directory: commits the journal,
    /// then (for a file) writes its dirty bytes and size to the backing file.
    pub fn fsync(&mut self, ino: Ino) -> FsResult<()> {
        self.inode(ino)?;
        self.status.fsyncs += 1;
        self.commit()?;
        if matches!(self.inode(ino)?.node, Node::File(_)) {
            self.flush_file(ino)?;
        }
        Ok(())
    }

    /// Commits everything: what a kernel's writeback and journal commit eventually do.
    pub fn checkpoint(&mut self) -> FsResult<()> {
        self.status.writebacks += 1;
        self.commit()?;
        let files: Vec<Ino> = self
            .inodes
            .iter()
            .filter(|(_, i)| matches!(&i.node, Node::File(f) if f.needs_flush()))
            .map(|(ino, _)| *ino)
            .collect();
        for ino in files {
            self.flush_file(ino)?;
        }
        Ok(())
    }

    /// Replays the journal on the backing directory, in order. On a failure the ops
    /// before it stay applied, the rest stay pending, and the caller gets `EIO`.
    fn commit(&mut self) -> FsResult<()> {
        let ops = std::mem::take(&mut self.journal);
        for (i, (op, what)) in ops.iter().enumerate() {
            if let Err(e) = self.replay(op) {
                eprintln!("lazyfs: could not make `{what}` durable in the backing directory: {e}");
                self.journal = ops[i..].to_vec();
                return Err(Errno::EIO);
            }
        }
        Ok(())
    }

    fn replay(&mut self, op: &MetaOp) -> FsResult<()> {
        match op {
            MetaOp::Create {
                parent,
                name,
                ino,
                perm,
                uid,
                gid,
            } => {
                let fd = nix::fcntl::openat(
                    Some(self.fd_of(*parent)?),
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_RDWR
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(u32::from(*perm)),
                )?;
                self.adopt(*ino, fd, *uid, *gid, *perm)?;
            }
            MetaOp::Mkdir {
                parent,
                name,
                ino,
                perm,
                uid,
                gid,
            } => {
                let dir_fd = self.fd_of(*parent)?;
                nix::sys::stat::mkdirat(
                    Some(dir_fd),
                    name.as_os_str(),
                    Mode::from_bits_truncate(u32::from(*perm)),
                )?;
                let fd = nix::fcntl::openat(
                    Some(dir_fd),
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                self.adopt(*ino, fd, *uid, *gid, *perm)?;
            }
            MetaOp::Symlink {
                parent,
                name,
                target,
                uid,
                gid,
            } => {
                let dir_fd = self.fd_of(*parent)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dir_fd), name.as_os_str())?;
                chown_entry(dir_fd, name, *uid, *gid)?;
            }
            MetaOp::Mknod {
                parent,
                name,
                kind,
                perm,
                uid,
                gid,
            } => {
                let dir_fd = self.fd_of(*parent)?;
                let sflag = if *kind == Kind::Socket {
                    SFlag::S_IFSOCK
                } else {
                    SFlag::S_IFIFO
                };
                nix::sys::stat::mknodat(
                    Some(dir_fd),
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(u32::from(*perm)),
                    0,
                )?;
                chown_entry(dir_fd, name, *uid, *gid)?;
            }
            MetaOp::Link {
                from_parent,
                from_name,
                parent,
                name,
            } => {
                nix::unistd::linkat(
                    Some(self.fd_of(*from_parent)?),
                    from_name.as_os_str(),
                    Some(self.fd_of(*parent)?),
                    name.as_os_str(),
                    AtFlags::empty(),
                )?;
            }
            MetaOp::Unlink { parent, name, dir } => {
                let flag = if *dir {
                    nix::unistd::UnlinkatFlags::RemoveDir
                } else {
                    nix::unistd::UnlinkatFlags::NoRemoveDir
                };
                nix::unistd::unlinkat(Some(self.fd_of(*parent)?), name.as_os_str(), flag)?;
            }
            MetaOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => {
                nix::fcntl::renameat2(
                    Some(self.fd_of(*parent)?),
                    name.as_os_str(),
                    Some(self.fd_of(*new_parent)?),
                    new_name.as_os_str(),
                    nix::fcntl::RenameFlags::from_bits_truncate(*flags),
                )?;
            }
            // An inode that is gone was unlinked and forgotten: a later op in this same
            // journal removes its name, so its size and mode no longer matter.
            MetaOp::SetLen { ino, len } => {
                if let Some(f) = self.inodes.get(ino).and_then(|i| i.durable.as_ref()) {
                    f.set_len(*len).map_err(|e| io_errno(&e))?;
                }
            }
            MetaOp::Chmod { ino, perm } => {
                if let Some(f) = self.inodes.get(ino).and_then(|i| i.durable.as_ref()) {
                    nix::sys::stat::fchmod(
                        f.as_raw_fd(),
                        Mode::from_bits_truncate(u32::from(*perm)),
                    )?;
                }
            }
            MetaOp::Chown { ino, uid, gid } => {
                if let Some(f) = self.inodes.get(ino).and_then(|i| i.durable.as_ref()) {
                    nix::unistd::fchown(
                        f.as_raw_fd(),
                        Some(Uid::from_raw(*uid)),
                        Some(Gid::from_raw(*gid)),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Gives the backing file or directory just created for `ino` its owner and mode,
    /// and keeps it as the inode's durable handle (closed if the inode is gone).
    fn adopt(&mut self, ino: Ino, fd: RawFd, uid: u32, gid: u32, perm: u16) -> FsResult<()> {
        let file = file_from(fd);
        nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(u32::from(perm)))?;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.durable = Some(file);
        }
        Ok(())
    }

    /// Writes a file's dirty bytes and size to its backing file (after a commit, so the
    /// backing file exists).
    fn flush_file(&mut self, ino: Ino) -> FsResult<()> {
        let inode = self.inode(ino)?;
        let Node::File(f) = &inode.node else {
            return Ok(());
        };
        if !f.needs_flush() {
            return Ok(());
        }
        let durable = inode.durable.as_ref().ok_or(Errno::EIO)?;
        // No cut to apply here: every cut was journaled as a `SetLen`, and the commit
        // that precedes every flush has replayed it on the backing file.
        for (offset, bytes) in f.dirty.iter() {
            durable
                .write_all_at(bytes, offset)
                .map_err(|e| io_errno(&e))?;
        }
        durable.set_len(f.size).map_err(|e| io_errno(&e))?;
        let flushed = f.dirty.bytes();
        let f = self.file_mut(ino)?;
        f.dirty.clear();
        f.base_cut = None;
        self.dirty_total -= flushed;
        if self.last_write.is_some_and(|(i, _, _)| i == ino) {
            self.last_write = None;
        }
        Ok(())
    }

    /// The power failure: drops everything not durable (optionally keeping a prefix of the
    /// last write), then reloads the live view from the backing directory.
    pub fn discard(&mut self, torn: Option<Torn>) -> FsResult<DiscardReport> {
        let mut dropped_files: Vec<(String, u64)> = self
            .inodes
            .iter()
            .filter_map(|(ino, i)| match &i.node {
                Node::File(f) if f.needs_flush() => Some((self.path_of(*ino), f.dirty.bytes())),
                _ => None,
            })
            .collect();
        dropped_files.sort();
        let torn_report = match torn {
            Some(t) => self.tear_last_write(t)?,
            None => None,
        };
        let report = DiscardReport {
            dropped_bytes: self.dirty_total - torn_report.as_ref().map_or(0, |t| t.kept_bytes),
            dropped_file_count: dropped_files.len(),
            dropped_files: dropped_files
                .into_iter()
                .take(MAX_REPORTED)
                .map(|(p, _)| p)
                .collect(),
            dropped_metadata_ops: self.journal.len(),
            metadata_ops: self
                .journal
                .iter()
                .take(MAX_REPORTED)
                .map(|(_, w)| w.clone())
                .collect(),
            torn: torn_report,
        };
        self.load()?;
        self.status.discards += 1;
        Ok(report)
    }

    /// Writes a prefix of the last write to its backing file, if that write is still
    /// unsynced and its file exists durably (its creation was committed).
    fn tear_last_write(&mut self, torn: Torn) -> FsResult<Option<TornReport>> {
        let Some((ino, offset, len)) = self.last_write else {
            return Ok(None);
        };
        let Ok(inode) = self.inode(ino) else {
            return Ok(None);
        };
        let Some(durable) = &inode.durable else {
            return Ok(None);
        };
        let Node::File(f) = &inode.node else {
            return Ok(None);
        };
        let len = len.min(f.size.saturating_sub(offset));
        if len == 0 {
            return Ok(None);
        }
        let Some(keep) = torn.prefix_bytes.or_else(|| sector_prefix(offset, len)) else {
            return Ok(None);
        };
        let keep = keep.min(len - 1);
        let mut bytes = vec![0u8; keep as usize];
        f.dirty.overlay(offset, &mut bytes);
        durable
            .write_all_at(&bytes, offset)
            .map_err(|e| io_errno(&e))?;
        Ok(Some(TornReport {
            file: self.path_of(ino),
            offset,
            write_bytes: len,
            kept_bytes: keep,
        }))
    }

    pub fn status(&self) -> Status {
        Status {
            dirty_bytes: self.dirty_total,
            dirty_files: self
                .inodes
                .values()
                .filter(|i| matches!(&i.node, Node::File(f) if f.needs_flush()))
                .count(),
            pending_metadata_ops: self.journal.len(),
            ..self.status.clone()
        }
    }

    /// Numbers for statfs: the backing filesystem's.
    pub fn statfs(&self) -> FsResult<nix::sys::statvfs::Statvfs> {
        let root = self.inode(ROOT)?.durable.as_ref().ok_or(Errno::EIO)?;
        nix::sys::statvfs::fstatvfs(root)
    }
}

/// The names in a backing directory, without `.` and `..`.
fn list_dir(dir_fd: RawFd) -> FsResult<Vec<OsString>> {
    let mut dir = nix::dir::Dir::openat(
        Some(dir_fd),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
