//! Throughput through lazyfs against the bare backing filesystem, in one run: sequential
//! writes without fsync, and small appends each followed by fdatasync (a WAL's pattern).
//! Each cell is the median of 5 repetitions. Needs root and /dev/fuse (skipped
//! otherwise); run under the shared lock:
//!
//! `cargo bench -p distest-lazyfs --bench throughput --no-run && flock -o /work/locks/netns.lock cargo bench -p distest-lazyfs --bench throughput`
//!
//! Note what is compared: lazyfs' fsync writes the dirty bytes to the backing file but
//! does not fsync the backing filesystem (it simulates durability), so "append + fsync"
//! through lazyfs is bounded by FUSE round trips, the bare one by the disk's flushes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const REPETITIONS: usize = 5;
const SEQ_TOTAL_BYTES: usize = 64 << 20;
const SEQ_CHUNK_BYTES: usize = 64 << 10;
const APPEND_BYTES: usize = 4096;
const APPENDS: usize = 2000;

/// MB/s of writing `SEQ_TOTAL_BYTES` to a new file in `dir`, no fsync.
fn sequential_mb_per_s(dir: &Path) -> f64 {
    let path = dir.join("seq");
    let chunk = vec![0xA5u8; SEQ_CHUNK_BYTES];
    let start = Instant::now();
    let mut f = File::create(&path).unwrap();
    for _ in 0..SEQ_TOTAL_BYTES / SEQ_CHUNK_BYTES {
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    SEQ_TOTAL_BYTES as f64 / 1e6 / secs
}

/// Appends per second, each `APPEND_BYTES` followed by fdatasync.
fn append_fsync_per_s(dir: &Path) -> f64 {
    let path = dir.join("wal");
    let record = vec![0x5Au8; APPEND_BYTES];
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let start = Instant::now();
    for _ in 0..APPENDS {
        f.write_all(&record).unwrap();
        f.sync_data().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    APPENDS as f64 / secs
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Removes the bench's directories on drop (the mount, held separately, goes first).
struct Dirs(PathBuf);
impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: the lazyfs benchmark needs root and /dev/fuse");
        return;
    }
    let root = std::env::temp_dir().join(format!("dt-lazyfs-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dirs = Dirs(root.clone());
    let (bare, backing, mnt) = (root.join("bare"), root.join("backing"), root.join("mnt"));
    for d in [&bare, &backing, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mounted = distest_lazyfs::mount_background(&backing, &mnt, 1 << 30).unwrap();
    let mut rows = Vec::new();
    for (name, f) in [
        (
            "sequential write, 64 KiB chunks, no fsync (MB/s)",
            sequential_mb_per_s as fn(&Path) -> f64,
        ),
        ("4 KiB append + fdatasync (ops/s)", append_fsync_per_s),
    ] {
        let mut on_bare = Vec::new();
        let mut on_lazyfs = Vec::new();
        for _ in 0..REPETITIONS {
            on_bare.push(f(&bare));
            on_lazyfs.push(f(&mnt));
        }
        rows.push((name, median(on_bare), median(on_lazyfs)));
    }
    drop(mounted);
    drop(dirs);
    println!("{:<52} {:>12} {:>12} {:>8}", "", "bare", "lazyfs", "ratio");
    for (name, bare, lazy) in rows {
        println!("{name:<52} {bare:>12.1} {lazy:>12.1} {:>7.2}x", lazy / bare);
    }
}
