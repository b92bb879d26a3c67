//! lazyfs mounted for real (root and /dev/fuse only; skipped otherwise): programs write
//! through the kernel, and a discard loses exactly what they did not fsync. Run under the
//! shared lock: `cargo test -p distest-lazyfs --test fuse --no-run && flock
//! /work/locks/netns.lock cargo test -p distest-lazyfs --test fuse`.

use distest_lazyfs::control::{self, Request};
use distest_lazyfs::fs::Torn;
use distest_lazyfs::fuse::lock;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn can_mount() -> bool {
    nix::unistd::Uid::effective().is_root() && Path::new("/dev/fuse").exists()
}

macro_rules! require_fuse {
    () => {
        if !can_mount() {
            eprintln!("skipped: needs root and /dev/fuse");
            return;
        }
    };
}

/// A backing directory and a mount point, removed on drop (after the mount, which is
/// declared after this and so dropped first).
struct Dirs {
    root: PathBuf,
}

impl Dirs {
    fn new(tag: &str) -> Dirs {
        let root =
            std::env::temp_dir().join(format!("dt-lazyfs-fuse-{tag}-{}", std::process::id()));
        let _ = Command::new("umount")
            .arg("-l")
            .arg(root.join("mnt"))
            .output();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("backing")).unwrap();
        std::fs::create_dir_all(root.join("mnt")).unwrap();
        Dirs { root }
    }
    fn backing(&self) -> PathBuf {
        self.root.join("backing")
    }
    fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        // Never remove through a live mount: only once nothing is mounted there.
        if !is_mounted(&self.mnt()) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(path.as_ref()))
}

/// The toy daemon: writes six records to `log`, `sync`s the file after records 2 and 4
/// (coreutils `sync FILE` is fsync(2)), with `marker` as its second argument creates
/// that file last, never synced, then waits to be killed.
const TOY_DAEMON: &str = r#"
cd "$1" || exit 1
for i in 1 2 3 4 5 6; do
  printf 'record-%d\n' "$i" >> log
  case $i in 2|4) sync log ;; esac
done
[ "$2" = marker ] && echo started > marker
echo ready
exec sleep 60
"#;

/// Runs the toy daemon in `dir` until it has written everything, then SIGKILLs it.
fn run_toy_daemon_and_kill_it(dir: &Path, marker: bool) {
    use std::io::BufRead;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(TOY_DAEMON)
        .arg("toy")
        .arg(dir)
        .arg(if marker { "marker" } else { "-" })
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_toy_daemon_loses_exactly_its_unsynced_records() {
    require_fuse!();
    let dirs = Dirs::new("toy");
    let mounted = distest_lazyfs::mount_background(&dirs.backing(), &dirs.mnt(), 1 << 30).unwrap();
    run_toy_daemon_and_kill_it(&dirs.mnt(), true);
    let all: String = (1..=6).map(|i| format!("record-{i}\n")).collect();
    assert_eq!(
        std::fs::read_to_string(dirs.mnt().join("log")).unwrap(),
        all
    );
    let report = lock(&mounted.fs).discard(None).unwrap();
    let kept: String = (1..=4).map(|i| format!("record-{i}\n")).collect();
    assert_eq!(
        std::fs::read_to_string(dirs.mnt().join("log")).unwrap(),
        kept
    );
    assert!(
        !dirs.mnt().join("marker").exists(),
        "the unsynced create is lost"
    );
    assert_eq!(
        report.dropped_bytes,
        ("record-5\nrecord-6\n".len() + "started\n".len()) as u64
    );
    assert_eq!(report.dropped_metadata_ops, 1);
    // The backing directory holds exactly the durable state.
    assert_eq!(
        std::fs::read_to_string(dirs.backing().join("log")).unwrap(),
        kept
    );
    drop(mounted);
    assert!(!is_mounted(&dirs.mnt()));
}

#[test]
fn a_torn_discard_keeps_a_prefix_of_the_last_record() {
    require_fuse!();
    let dirs = Dirs::new("torn");
    let mounted = distest_lazyfs::mount_background(&dirs.backing(), &dirs.mnt(), 1 << 30).unwrap();
    run_toy_daemon_and_kill_it(&dirs.mnt(), false);
    let report = lock(&mounted.fs)
        .discard(Some(Torn {
            prefix_bytes: Some(4),
        }))
        .unwrap();
    let torn = report.torn.expect("record 6 was torn");
    assert_eq!(
        (torn.file.as_str(), torn.kept_bytes, torn.write_bytes),
        ("log", 4, 9)
    );
    let kept: String = (1..=4).map(|i| format!("record-{i}\n")).collect();
    // Record 5 was never written back: its place is a hole, then record 6's prefix.
    let expected = format!("{kept}{}reco", "\0".repeat("record-5\n".len()));
    assert_eq!(
        std::fs::read_to_string(dirs.mnt().join("log")).unwrap(),
        expected
    );
}

#[test]
fn o_sync_writes_renames_and_directory_fsyncs_through_the_kernel() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    require_fuse!();
    let dirs = Dirs::new("kernel");
    let mounted = distest_lazyfs::mount_background(&dirs.backing(), &dirs.mnt(), 1 << 30).unwrap();
    let mnt = dirs.mnt();
    std::fs::create_dir(mnt.join("d")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_SYNC)
        .open(mnt.join("d/sync"))
        .unwrap();
    f.write_all(b"durable at once").unwrap();
    drop(f);
    std::fs::write(mnt.join("d/tmp"), b"replacement").unwrap();
    std::fs::File::open(mnt.join("d/tmp"))
        .unwrap()
        .sync_all()
        .unwrap();
    std::fs::rename(mnt.join("d/tmp"), mnt.join("d/final")).unwrap();
    std::fs::File::open(mnt.join("d"))
        .unwrap()
        .sync_all()
        .unwrap(); // fsync(dir)
    std::fs::write(mnt.join("d/unsynced"), b"x").unwrap();
    lock(&mounted.fs).discard(None).unwrap();
    assert_eq!(
        std::fs::read(mnt.join("d/sync")).unwrap(),
        b"durable at once"
    );
    assert_eq!(std::fs::read(mnt.join("d/final")).unwrap(), b"replacement");
    assert!(!mnt.join("d/tmp").exists());
    assert!(!mnt.join("d/unsynced").exists());
}

/// A Unix socket bound inside the mount works (PostgreSQL keeps its socket in its data
/// directory): a client connects through its path and they talk.
#[test]
fn a_unix_socket_bound_in_the_mount_accepts_connections() {
    require_fuse!();
    use std::io::{Read, Write};
    let dirs = Dirs::new("socket");
    let _mounted = distest_lazyfs::mount_background(&dirs.backing(), &dirs.mnt(), 1 << 30).unwrap();
    let path = dirs.mnt().join(".s.toy");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = [0u8; 4];
        conn.read_exact(&mut got).unwrap();
        conn.write_all(b"pong").unwrap();
        got
    });
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.write_all(b"ping").unwrap();
    let mut answer = [0u8; 4];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"pong");
    assert_eq!(&server.join().unwrap(), b"ping");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_panic_while_mounted_still_unmounts() {
    require_fuse!();
    let dirs = Dirs::new("panic");
    let mnt = dirs.mnt();
    let result = std::panic::catch_unwind(|| {
        let _mounted = distest_lazyfs::mount_background(&dirs.backing(), &mnt, 1 << 30).unwrap();
        assert!(is_mounted(&mnt));
        panic!("a test failing while the filesystem is mounted");
    });
    assert!(result.is_err());
    assert!(!is_mounted(&mnt), "the guard unmounted during the unwind");
}

/// The `lazyfs` program: control socket, SIGTERM writes back and unmounts, exit 0.
#[test]
fn the_program_answers_on_its_socket_and_writes_back_at_sigterm() {
    require_fuse!();
    let dirs = Dirs::new("program");
    let socket = dirs.root.join("ctl.sock");
    /// Kills the program if the test fails before it exits (its mount dies with it).
    struct Program(std::process::Child, PathBuf);
    impl Drop for Program {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.1.as_os_str())
                .output();
        }
    }
    let mut program = Program(
        Command::new(env!("CARGO_BIN_EXE_lazyfs"))
            .args(["mount", "--backing"])
            .arg(dirs.backing())
            .arg("--mountpoint")
            .arg(dirs.mnt())
            .arg("--socket")
            .arg(&socket)
            .spawn()
            .unwrap(),
        dirs.mnt(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while control::call(&socket, &Request::Status).is_err() {
        assert!(
            Instant::now() < deadline,
            "the control socket never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(dirs.mnt().join("unsynced"), b"kept by a clean unmount").unwrap();
    let status = control::call(&socket, &Request::Status).unwrap();
    assert_eq!(status["dirty_bytes"], 23);
    assert_eq!(status["pending_metadata_ops"], 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(program.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = program.0.wait().unwrap();
    assert!(code.success(), "{code:?}");
    assert!(!is_mounted(&dirs.mnt()));
    assert!(!socket.exists());
    assert_eq!(
        std::fs::read(dirs.backing().join("unsynced")).unwrap(),
        b"kept by a clean unmount"
    );
}
