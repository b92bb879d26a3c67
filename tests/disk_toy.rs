//! The disk nemesis on a toy daemon (root only: a one-node namespace cluster, lazyfs
//! mounted on the host): the daemon writes six records and fsyncs after the 2nd and 4th;
//! `lose-unsynced` loses exactly records 5 and 6. Restarted, it appends two unsynced
//! records; a torn `lose-unsynced` keeps a 4-byte prefix of the last one, after a hole
//! where the other was. Cluster `lz1` in 10.77.175.0/24.

mod common;

use distest::nodes::{ClusterSpec, LocalCluster, NodeShell, Remote};
use distest::targets::managed::{ManagedDaemon, NodePaths};
use distest_nemeses::{
    ClockSupport, DataDir, FaultOp, Nemesis, NemesisContext, NodeError, TargetControl,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOY: &str = r#"
cd "$1" || exit 1
if [ -e log ]; then
  printf 'restart-a\n' >> log
  printf 'restart-b\n' >> log
else
  for i in 1 2 3 4 5 6; do
    printf 'record-%d\n' "$i" >> log
    case $i in 2|4) sync log ;; esac
  done
fi
exec sleep 600
"#;

/// The toy as a target: process faults and the data directory through ManagedDaemon.
struct Toy(ManagedDaemon);

impl TargetControl for Toy {
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        self.0.kill(node)
    }
    fn start(&self, node: &str) -> Result<(), NodeError> {
        self.0.start(node)
    }
    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.0.pause(node)
    }
    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.0.resume(node)
    }
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn has_primaries(&self) -> bool {
        false
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.0.clock_support(node)
    }
    fn data_dir(&self, node: &str) -> Result<DataDir, String> {
        self.0.data_dir(node)
    }
}

/// Stops the toy and lazyfs (wiping), then the cluster: also when the test fails.
struct Running {
    toy: Arc<Toy>,
    _cluster: LocalCluster,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.toy.0.stop_all(true) {
            eprintln!("stopping the toy: {e:#}");
        }
    }
}

fn wait_for(path: &Path, content: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|c| c == content) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {content:?}: {:?}",
            path.display(),
            std::fs::read_to_string(path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_disk_fault_loses_exactly_the_toy_daemons_unsynced_writes() {
    common::require_root!();
    let base = PathBuf::from("/tmp/dt-test-nodes-lz1");
    let mut spec = ClusterSpec::new(1);
    spec.cluster_id = "lz1".into();
    spec.subnet = "10.77.175.0/24".parse().unwrap();
    spec.base_dir = base.clone();
    let cluster = LocalCluster::up(spec).unwrap();
    let nodes: Vec<Arc<dyn Remote>> = cluster.nodes();
    let spec_fn = Box::new(|_i: usize, p: &NodePaths| {
        let mut d = distest::nodes::DaemonSpec::new("sh", p.pid_file.clone(), p.log_file.clone());
        d.args = vec![
            "-c".into(),
            TOY.into(),
            "toy".into(),
            p.data.display().to_string(),
        ];
        d
    });
    let daemon = ManagedDaemon::new(nodes.clone(), "toy", Err("a shell loop".into()), spec_fn)
        .with_lazyfs(true);
    let log = daemon.paths(0).data.join("log");
    let toy = Arc::new(Toy(daemon));
    let running = Running {
        toy: toy.clone(),
        _cluster: cluster,
    };
    running.toy.0.start_all().unwrap();
    let records = |n: usize| -> String { (1..=n).map(|i| format!("record-{i}\n")).collect() };
    wait_for(&log, &records(6));

    let shells: Vec<Arc<dyn NodeShell>> = nodes
        .iter()
        .map(|n| n.clone() as Arc<dyn NodeShell>)
        .collect();
    let mut disk = distest_nemeses::disk::Disk::new(&NemesisContext {
        nodes: shells,
        target: toy.clone(),
        seed: 1,
    });
    let done = disk
        .invoke(&FaultOp::new("lose-unsynced", json!({"nodes": ["n1"]})))
        .unwrap();
    assert_eq!(
        done["lost"]["n1"]["dropped_bytes"],
        json!("record-5\nrecord-6\n".len())
    );
    // Restarted on what was durable: records 1..4, then its two unsynced appends.
    wait_for(&log, &format!("{}restart-a\nrestart-b\n", records(4)));

    let done = disk
        .invoke(&FaultOp::new(
            "lose-unsynced",
            json!({"nodes": ["n1"], "torn": true, "prefix_bytes": 4}),
        ))
        .unwrap();
    assert_eq!(
        done["lost"]["n1"]["torn"],
        json!({"file": "log", "offset": records(4).len() + 10, "write_bytes": 10, "kept_bytes": 4})
    );
    let torn = format!("{}{}rest", records(4), "\0".repeat(10));
    // The restarted toy appends again after the torn prefix.
    wait_for(&log, &format!("{torn}restart-a\nrestart-b\n"));
    assert!(disk.heal().is_empty());
    drop(running);
    common::assert_cluster_gone("lz1");
    let _ = std::fs::remove_dir(&base);
}
