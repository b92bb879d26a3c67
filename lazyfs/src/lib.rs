//! distest's lazyfs: a FUSE filesystem over a backing directory that keeps every write
//! not yet fsynced in memory, so that a fault can lose exactly what a power failure would
//! lose — the idea of Jepsen's lazyfs (INESC TEC's LazyFS), written for distest.
//!
//! - [`fs`]: the filesystem and its durability rules (ext4-like, see its docs), without
//!   FUSE: testable on a plain directory.
//! - [`extents`]: the dirty bytes of one file.
//! - [`fuse`]: the `fuser` adapter.
//! - [`control`]: the unix-socket control channel (`status`, `checkpoint`, `discard`).
//!
//! The `distest` binary runs [`main_with_args`] when invoked as `lazyfs` (multicall):
//!
//! ```text
//! lazyfs mount --backing DIR --mountpoint DIR --socket PATH [--max-dirty-bytes N]
//! lazyfs ctl --socket PATH status | checkpoint | discard [--torn [--prefix-bytes N]]
//! ```
//!
//! `mount` stays in the foreground until SIGTERM/SIGINT, then writes everything back
//! (like `umount`), unmounts and exits 0; the control socket answers only once the mount
//! is up, so a caller waits for `ctl status` to succeed. `ctl` prints the answer as JSON.
//! Exit codes: 0 done, 1 failed, 2 bad arguments.

pub mod control;
pub mod extents;
pub mod fs;
pub mod fuse;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The program name the multicall dispatches on.
pub const PROGRAM: &str = "lazyfs";
/// `fsname` of our mounts in /proc/self/mountinfo: how cleanup finds them.
pub const FSNAME: &str = "distest-lazyfs";

#[derive(Parser, Debug)]
#[command(
    name = "lazyfs",
    about = "A FUSE filesystem that keeps unsynced writes in memory, to lose them on command"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve BACKING at MOUNTPOINT until SIGTERM.
    Mount {
        #[arg(long)]
        backing: PathBuf,
        #[arg(long)]
        mountpoint: PathBuf,
        #[arg(long)]
        socket: PathBuf,
        /// Dirty bytes held before everything is written back (memory pressure).
        #[arg(long, default_value_t = fs::DEFAULT_MAX_DIRTY_BYTES)]
        max_dirty_bytes: u64,
    },
    /// Send a command to a mounted lazyfs.
    Ctl {
        #[arg(long)]
        socket: PathBuf,
        #[command(subcommand)]
        request: CtlRequest,
    },
}

#[derive(Subcommand, Debug)]
enum CtlRequest {
    /// Dirty bytes, pending metadata operations, counters.
    Status,
    /// Make everything durable now.
    Checkpoint,
    /// Lose everything not fsynced (the daemon using the mount should be stopped first).
    Discard {
        /// Keep a prefix of the last unsynced write (a torn write).
        #[arg(long)]
        torn: bool,
        /// How many bytes of it to keep, exactly (default: up to the 512-byte sector boundary
        /// nearest its middle; a write within one sector is not torn).
        #[arg(long, requires = "torn")]
        prefix_bytes: Option<u64>,
    },
}

/// Runs `lazyfs` with `args` (`args[0]` is the program name); returns the exit code.
pub fn main_with_args(args: Vec<String>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Mount {
            backing,
            mountpoint,
            socket,
            max_dirty_bytes,
        } => mount(&backing, &mountpoint, &socket, max_dirty_bytes),
        Command::Ctl { socket, request } => {
            let request = match request {
                CtlRequest::Status => control::Request::Status,
                CtlRequest::Checkpoint => control::Request::Checkpoint,
                CtlRequest::Discard { torn, prefix_bytes } => {
                    control::Request::Discard { torn, prefix_bytes }
                }
            };
            control::call(&socket, &request).map(|v| println!("{v}"))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lazyfs: {e}");
            1
        }
    }
}

/// The FUSE session settings every mount uses.
fn config() -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(FSNAME.to_string()),
        fuser::MountOption::Subtype(PROGRAM.to_string()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::RW,
    ];
    // Targets may run as another user than the mount (postgres does).
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(1);
    config
}

fn mount_error(mountpoint: &std::path::Path, e: &std::io::Error) -> String {
    format!(
        "cannot mount at {}: {e} (is /dev/fuse there, and are we root?)",
        mountpoint.display()
    )
}

/// The filesystem over `backing`, shared by FUSE and the control channel.
fn open_shared(
    backing: &std::path::Path,
    max_dirty_bytes: u64,
) -> Result<Arc<Mutex<fs::LazyFs>>, String> {
    let fs = fs::LazyFs::open(backing, max_dirty_bytes).map_err(|e| {
        format!(
            "cannot serve the backing directory {}: {e}",
            backing.display()
        )
    })?;
    Ok(Arc::new(Mutex::new(fs)))
}

/// A lazyfs mounted by this process, served on a background thread; dropping it (also
/// while a panic unwinds) unmounts it without writing anything back.
pub struct Mounted {
    pub fs: Arc<Mutex<fs::LazyFs>>,
    _session: fuser::BackgroundSession,
}

/// Mounts `backing` at `mountpoint` in this process (tests, benchmarks).
pub fn mount_background(
    backing: &std::path::Path,
    mountpoint: &std::path::Path,
    max_dirty_bytes: u64,
) -> Result<Mounted, String> {
    let fs = open_shared(backing, max_dirty_bytes)?;
    let session = fuser::Session::new(fuse::Fuse { fs: fs.clone() }, mountpoint, &config())
        .and_then(fuser::Session::spawn)
        .map_err(|e| mount_error(mountpoint, &e))?;
    Ok(Mounted {
        fs,
        _session: session,
    })
}

/// Mounts, serves until SIGTERM/SIGINT/SIGHUP, writes back, unmounts.
fn mount(
    backing: &std::path::Path,
    mountpoint: &std::path::Path,
    socket: &std::path::Path,
    max_dirty_bytes: u64,
) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    // Every durable file and directory stays open: allow as many descriptors as we may.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let fs = open_shared(backing, max_dirty_bytes)?;
    // Blocked here, before any thread starts, so every thread inherits the mask and only
    // the waiting thread below receives them.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let mut session = fuser::Session::new(fuse::Fuse { fs: fs.clone() }, mountpoint, &config())
        .map_err(|e| mount_error(mountpoint, &e))?;
    let mut unmounter = session.unmount_callable();
    let _ = std::fs::remove_file(socket);
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .map_err(|e| format!("cannot create the control socket {}: {e}", socket.display()));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = unmounter.unmount();
            return Err(e);
        }
    };
    let control_fs = fs.clone();
    std::thread::Builder::new()
        .name("lazyfs-control".into())
        .spawn(move || control::serve(listener, control_fs))
        .map_err(|e| e.to_string())?;
    let socket_path = socket.to_path_buf();
    std::thread::Builder::new()
        .name("lazyfs-signals".into())
        .spawn(move || {
            match signals.wait() {
                Ok(signal) => eprintln!("lazyfs: {signal}: writing back and unmounting"),
                Err(e) => eprintln!("lazyfs: waiting for signals failed ({e}): unmounting"),
            }
            let code = match fuse::lock(&fs).checkpoint() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("lazyfs: writing back failed: {e}");
                    1
                }
            };
            if let Err(e) = unmounter.unmount() {
                eprintln!("lazyfs: unmounting failed: {e}");
            }
            let _ = std::fs::remove_file(&socket_path);
            // Do not wait for the session loop: a copy of the mount in another mount
            // namespace (any `ip netns exec` started meanwhile holds one) keeps the
            // connection open; exiting closes /dev/fuse, which ends it everywhere.
            std::process::exit(code);
        })
        .map_err(|e| e.to_string())?;
    eprintln!(
        "lazyfs: serving {} at {} (control socket {})",
        backing.display(),
        mountpoint.display(),
        socket.display()
    );
    session
        .run()
        .map_err(|e| format!("the FUSE session ended: {e}"))?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}
