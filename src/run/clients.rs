//! The clients of a run: one task per logical client thread running ops one at a time
//! against its node, and the final ops once per node after the heal. When ops are sent
//! and under which process id is the generator's (`distest_generator::{Pace,
//! Processes}`); the op mix is the workload's, drawn from the stream `workload`.

use super::recorder::Recorder;
use crate::signals::StopFlag;
use crate::targets::Target;
use distest_checkers::{Op, OpType, Process};
use distest_generator::{process::final_process, Pace, Processes};
use distest_workloads::{Completion, OpRequest, Workload};
use rand::rngs::StdRng;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The one workload generator every client draws from, with its random stream.
pub type SharedWorkload = Arc<Mutex<(Box<dyn Workload>, StdRng)>>;

/// How long a client waits before retrying a node it could not connect to.
const RECONNECT_WAIT: Duration = Duration::from_millis(100);
/// Tries of each final op per node (the node may still be recovering); each is an op.
const FINAL_ATTEMPTS: usize = 5;
const FINAL_RETRY_WAIT: Duration = Duration::from_millis(500);

/// One logical client thread.
pub struct ClientLoop {
    pub thread: usize,
    pub concurrency: usize,
    pub node: usize,
    pub node_name: Option<String>,
    pub target: Arc<dyn Target>,
    pub workload_name: String,
    pub workload: SharedWorkload,
    pub recorder: Recorder,
    pub stop: StopFlag,
    /// Raised at the first anomaly under `--stop-on-anomaly`: ends the main phase
    /// without counting as an interruption.
    pub anomaly_stop: StopFlag,
    pub deadline: Instant,
    pub pace: Pace,
    pub op_timeout: Duration,
}

impl ClientLoop {
    /// Runs ops one at a time under successive process ids until the deadline or a stop.
    pub async fn run(mut self) {
        let mut processes = Processes::new(self.thread, self.concurrency);
        let mut client = None;
        tokio::time::sleep(self.pace.stagger()).await;
        while Instant::now() < self.deadline
            && !self.stop.is_stopped()
            && !self.anomaly_stop.is_stopped()
        {
            if client.is_none() {
                match self.target.client(self.node, &self.workload_name).await {
                    Ok(cl) => client = Some(cl),
                    Err(e) => {
                        tracing::debug!("client {}: could not connect: {e:#}", processes.current());
                        tokio::time::sleep(RECONNECT_WAIT).await;
                        continue;
                    }
                }
            }
            // The invocation is recorded under the generator's lock, so ops enter the
            // history in the order they were generated: a key's retirement (after its
            // last op) then follows every invocation on it.
            let (req, inv) = {
                let mut g = self.workload.lock().unwrap_or_else(|e| e.into_inner());
                let (w, rng) = &mut *g;
                let req = w.next_op(processes.current(), rng);
                let inv = record_invocation(
                    &self.recorder,
                    processes.current(),
                    self.node_name.clone(),
                    &req,
                );
                (req, inv)
            };
            let completion = complete_recorded(
                client.as_mut().expect("connected above").as_mut(),
                &self.recorder,
                inv,
                &req,
                self.op_timeout,
            )
            .await;
            if completion == OpType::Info {
                // Indeterminate: this process may still have an op in flight, so it retires.
                processes.retire();
                client = None;
            }
            let wait = self.pace.after(completion == OpType::Ok);
            // A zero sleep still waits for the timer's next tick (a millisecond), which
            // capped each client at ~1,000 ops/s.
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Records the invocation, runs it with a timeout, records the completion.
pub async fn invoke_recorded(
    client: &mut dyn distest_workloads::Client,
    recorder: &Recorder,
    process: u64,
    node: Option<String>,
    req: &OpRequest,
    op_timeout: Duration,
) -> OpType {
    let inv = record_invocation(recorder, process, node, req);
    complete_recorded(client, recorder, inv, req, op_timeout).await
}

/// Records the invocation of `req`, then the retirement of the keys it is the last op on.
fn record_invocation(
    recorder: &Recorder,
    process: u64,
    node: Option<String>,
    req: &OpRequest,
) -> Op {
    let mut inv = Op::invoke(Process::Client(process), req.f.clone(), req.value.clone());
    inv.key = req.key.clone();
    inv.node = node;
    let inv = recorder.record(inv);
    for key in &req.retires {
        recorder.retire(key);
    }
    inv
}

/// Runs the recorded invocation `inv` with a timeout and records its completion.
async fn complete_recorded(
    client: &mut dyn distest_workloads::Client,
    recorder: &Recorder,
    inv: Op,
    req: &OpRequest,
    op_timeout: Duration,
) -> OpType {
    let completion = match tokio::time::timeout(op_timeout, client.invoke(req)).await {
        Ok(c) => c,
        Err(_) => Completion::info(Value::Null, "timeout"),
    };
    debug_assert!(completion.kind.is_completion());
    let value = if completion.kind == OpType::Ok || !completion.value.is_null() {
        completion.value
    } else {
        inv.value.clone()
    };
    let mut done = inv.complete(completion.kind, value);
    done.error = completion.error;
    recorder.record(done);
    completion.kind
}

/// Runs the workload's final ops once on every node, each try under a fresh process.
pub async fn final_phase(
    nodes: &[String],
    workload: &str,
    target: &Arc<dyn Target>,
    recorder: &Recorder,
    ops: &[OpRequest],
    op_timeout: Duration,
) {
    let mut tasks = Vec::new();
    for (i, name) in nodes.iter().enumerate() {
        let target = target.clone();
        let recorder = recorder.clone();
        let ops = ops.to_vec();
        let name = name.clone();
        let workload = workload.to_string();
        tasks.push(tokio::spawn(async move {
            let mut process = final_process(i);
            for op in &ops {
                for _attempt in 0..FINAL_ATTEMPTS {
                    let Ok(mut client) = target.client(i, &workload).await else {
                        tokio::time::sleep(FINAL_RETRY_WAIT).await;
                        continue;
                    };
                    let kind = invoke_recorded(
                        client.as_mut(),
                        &recorder,
                        process,
                        Some(name.clone()),
                        op,
                        op_timeout,
                    )
                    .await;
                    process += 1;
                    if kind == OpType::Ok {
                        break;
                    }
                    tokio::time::sleep(FINAL_RETRY_WAIT).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
