//! The message journal of a run whose nodes talk through distest's routers (the
//! `maelstrom` target), and Maelstrom's network statistics over it.
//!
//! Each router appends one [`NetEvent`] per thing it did with a message: `send` (it took
//! the message from its node, or from a client, and put it on the network), `deliver`
//! (it handed the message to its node's stdin, or to a client) and `drop` (it threw the
//! message away, with the reason). A message's `id` is given by the router that first
//! carried it and travels with it, so its events pair up across routers. Messages the
//! *network* dropped (a partition, packet loss) reach no router: they are the sends
//! without a delivery or a drop, which [`Journal::messages`] reports as undelivered.
//!
//! Pure like the rest of this crate: text in, values out.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// What a router did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetEventKind {
    Send,
    Deliver,
    Drop,
}

/// One line of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetEvent {
    /// Nanoseconds: on the recording router's monotonic clock in a node's journal file,
    /// since the run started (the history's clock) in a run's merged `messages.jsonl`.
    pub time: u64,
    pub event: NetEventKind,
    /// The message's id, unique in the run.
    pub id: u64,
    /// Where it happened: the node (or service) whose router recorded it.
    pub at: String,
    pub src: String,
    pub dest: String,
    /// The body's `type`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<u64>,
    /// For drops: why (`node-down`, `partition`, `no-route`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}: line {line} is not a journal event ({message}); the journal was edited or cut, regenerate it with a new run")]
pub struct JournalError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Reads a journal in JSON Lines. A last line cut short by a crash is ignored; any other
/// bad line is an error.
pub fn parse(text: &str, file: &str) -> Result<Vec<NetEvent>, JournalError> {
    let mut events = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<NetEvent>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(JournalError {
                    file: file.to_string(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(events)
}

/// Whether `id` names one of the control node's clients (`c1`, `c2`, ...).
pub fn is_client(id: &str) -> bool {
    id.strip_prefix('c')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How a message's journey ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    Delivered {
        time: u64,
    },
    Dropped {
        time: u64,
        reason: String,
    },
    /// Sent, but no router delivered or dropped it: the network lost it.
    Undelivered,
}

/// One message with its journey.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: u64,
    pub src: String,
    pub dest: String,
    pub body_type: Option<String>,
    pub msg_id: Option<u64>,
    pub in_reply_to: Option<u64>,
    /// When it was sent; a message only seen dropped or delivered is dated by that.
    pub sent: u64,
    pub fate: Fate,
}

/// A run's journal: every router's events, in time order.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    events: Vec<NetEvent>,
}

impl Journal {
    pub fn new(mut events: Vec<NetEvent>) -> Journal {
        events.sort_by_key(|e| (e.time, e.id));
        Journal { events }
    }

    pub fn events(&self) -> &[NetEvent] {
        &self.events
    }

    /// Every message once, in order of sending, with what became of it.
    pub fn messages(&self) -> Vec<Message> {
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        let mut out: Vec<Message> = Vec::new();
        for e in &self.events {
            let slot = *by_id.entry(e.id).or_insert_with(|| {
                out.push(Message {
                    id: e.id,
                    src: e.src.clone(),
                    dest: e.dest.clone(),
                    body_type: e.body_type.clone(),
                    msg_id: e.msg_id,
                    in_reply_to: e.in_reply_to,
                    sent: e.time,
                    fate: Fate::Undelivered,
                });
                out.len() - 1
            });
            let m = &mut out[slot];
            match e.event {
                NetEventKind::Send => m.sent = m.sent.min(e.time),
                NetEventKind::Deliver => m.fate = Fate::Delivered { time: e.time },
                NetEventKind::Drop => {
                    if !matches!(m.fate, Fate::Delivered { .. }) {
                        m.fate = Fate::Dropped {
                            time: e.time,
                            reason: e.reason.clone().unwrap_or_else(|| "unknown".into()),
                        }
                    }
                }
            }
        }
        out
    }

    /// Shifts every time by `-offset_ns` (saturating at 0): from a router's clock to the
    /// run's.
    pub fn shifted(events: Vec<NetEvent>, offset_ns: i128) -> Vec<NetEvent> {
        events
            .into_iter()
            .map(|mut e| {
                e.time = (e.time as i128 - offset_ns).clamp(0, u64::MAX as i128) as u64;
                e
            })
            .collect()
    }
}

/// One router's journal file, with how far that router's clock is ahead of the control
/// node's (see `clock_offset_ns` in `distest-maelstrom`).
pub struct Part<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub clock_offset_ns: i128,
}

/// Merges routers' journals into the run's journal: every event moved onto the control
/// node's clock and then to ns since `run_start_ns` (the control node's monotonic clock
/// when the history's time 0 was taken), in time order. Events from before the run
/// started (the nodes' `init`) are dated 0.
pub fn merge(parts: &[Part<'_>], run_start_ns: u64) -> Result<Journal, JournalError> {
    let mut events = Vec::new();
    for p in parts {
        let parsed = parse(p.text, p.file)?;
        events.extend(Journal::shifted(
            parsed,
            p.clock_offset_ns + run_start_ns as i128,
        ));
    }
    Ok(Journal::new(events))
}

/// The journal as JSON Lines.
pub fn to_jsonl(journal: &Journal) -> String {
    let mut out = String::new();
    for e in journal.events() {
        if let Ok(line) = serde_json::to_string(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[derive(Default)]
struct Counts {
    sends: u64,
    delivers: u64,
    drops: u64,
    messages: u64,
}

impl Counts {
    fn json(&self, ops: u64, per_op: bool) -> Value {
        let mut m = Map::new();
        m.insert("send-count".into(), json!(self.sends));
        m.insert("recv-count".into(), json!(self.delivers));
        m.insert("drop-count".into(), json!(self.drops));
        m.insert("msg-count".into(), json!(self.messages));
        if per_op && ops > 0 {
            m.insert(
                "msgs-per-op".into(),
                json!((self.messages as f64 / ops as f64 * 1000.0).round() / 1000.0),
            );
        }
        Value::Object(m)
    }
}

/// Maelstrom's network statistics: counts of sends, receipts (deliveries), drops and
/// distinct messages for all messages, for those to or from clients, and for those
/// between servers (nodes and services); `msgs-per-op` divides the message counts by
/// `client_ops` (the client invocations of the history). Drops are also counted by
/// reason, messages the network lost as `network`.
pub fn stats(journal: &Journal, client_ops: u64) -> Value {
    let (mut all, mut clients, mut servers) =
        (Counts::default(), Counts::default(), Counts::default());
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for e in journal.events() {
        let class = if is_client(&e.src) || is_client(&e.dest) {
            &mut clients
        } else {
            &mut servers
        };
        for c in [&mut all, class] {
            match e.event {
                NetEventKind::Send => c.sends += 1,
                NetEventKind::Deliver => c.delivers += 1,
                NetEventKind::Drop => c.drops += 1,
            }
        }
        if e.event == NetEventKind::Drop {
            *reasons
                .entry(e.reason.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
        }
    }
    for m in journal.messages() {
        let class = if is_client(&m.src) || is_client(&m.dest) {
            &mut clients
        } else {
            &mut servers
        };
        all.messages += 1;
        class.messages += 1;
        if m.fate == Fate::Undelivered {
            *reasons.entry("network".into()).or_default() += 1;
        }
    }
    json!({
        "all": all.json(client_ops, true),
        "clients": clients.json(client_ops, false),
        "servers": servers.json(client_ops, true),
        "drops-by-reason": reasons,
        "client-ops": client_ops,
    })
}

/// Maelstrom's `net` checker: always valid (the network's statistics judge nothing), with
/// [`stats`] as its evidence and msgs-per-op in its summary. `client_ops` is the number
/// of client invocations of the history.
pub fn verdict(journal: &Journal, client_ops: u64) -> crate::verdict::Verdict {
    let s = stats(journal, client_ops);
    let per_op = |class: &str| {
        s[class]["msgs-per-op"]
            .as_f64()
            .map_or("—".to_string(), |v| format!("{v:.2}"))
    };
    let summary = format!(
        "{} message(s), {} between servers; {} msgs-per-op, {} msgs-per-op between servers; {} dropped by a router, {} lost by the network.",
        s["all"]["msg-count"],
        s["servers"]["msg-count"],
        per_op("all"),
        per_op("servers"),
        s["all"]["drop-count"],
        s["drops-by-reason"]["network"].as_u64().unwrap_or(0),
    );
    crate::verdict::Verdict::valid(summary).with_evidence(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: u64, event: NetEventKind, id: u64, at: &str, src: &str, dest: &str) -> NetEvent {
        NetEvent {
            time,
            event,
            id,
            at: at.into(),
            src: src.into(),
            dest: dest.into(),
            body_type: Some("gossip".into()),
            msg_id: None,
            in_reply_to: None,
            reason: None,
        }
    }

    #[test]
    fn events_pair_up_into_messages_with_their_fates() {
        use NetEventKind::*;
        let mut dropped = ev(5, Drop, 3, "n3", "n1", "n3");
        dropped.reason = Some("node-down".into());
        let j = Journal::new(vec![
            ev(2, Deliver, 1, "n2", "n1", "n2"),
            ev(1, Send, 1, "n1", "n1", "n2"),
            ev(3, Send, 2, "n1", "n1", "n3"),
            ev(4, Send, 3, "n1", "n1", "n3"),
            dropped,
            ev(6, Send, 4, "n1", "c1", "n1"),
            ev(7, Deliver, 4, "n1", "c1", "n1"),
        ]);
        let ms = j.messages();
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].fate, Fate::Delivered { time: 2 });
        assert_eq!(ms[1].fate, Fate::Undelivered);
        assert_eq!(
            ms[2].fate,
            Fate::Dropped {
                time: 5,
                reason: "node-down".into()
            }
        );
        let s = stats(&j, 2);
        assert_eq!(s["all"]["msg-count"], 4);
        assert_eq!(s["servers"]["msg-count"], 3);
        assert_eq!(s["servers"]["msgs-per-op"], 1.5);
        assert_eq!(s["clients"]["recv-count"], 1);
        assert_eq!(s["drops-by-reason"]["node-down"], 1);
        assert_eq!(s["drops-by-reason"]["network"], 1);
        let v = verdict(&j, 2);
        assert_eq!(v.valid, crate::verdict::Validity::Valid);
        assert!(
            v.summary.contains("1.50 msgs-per-op between servers"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn journals_round_trip_and_a_cut_last_line_is_ignored() {
        let e = ev(10, NetEventKind::Send, 7, "n1", "n1", "lin-kv");
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("reason"), "{line}");
        let text = format!("{line}\n{}", &line[..line.len() / 2]);
        assert_eq!(parse(&text, "j").unwrap(), vec![e.clone()]);
        let err = parse(&format!("{{oops\n{line}\n"), "j").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(Journal::shifted(vec![e], 4)[0].time, 6);
    }

    #[test]
    fn journals_merge_onto_the_run_clock() {
        let a = serde_json::to_string(&ev(1_000, NetEventKind::Send, 1, "n1", "n1", "n2")).unwrap();
        let b =
            serde_json::to_string(&ev(1_450, NetEventKind::Deliver, 1, "n2", "n1", "n2")).unwrap();
        // n2's clock runs 400 ahead of ours; the run started at our 900.
        let j = merge(
            &[
                Part {
                    file: "n1",
                    text: &a,
                    clock_offset_ns: 0,
                },
                Part {
                    file: "n2",
                    text: &b,
                    clock_offset_ns: 400,
                },
            ],
            900,
        )
        .unwrap();
        let times: Vec<u64> = j.events().iter().map(|e| e.time).collect();
        assert_eq!(times, vec![100, 150]);
        let back = parse(&to_jsonl(&j), "merged").unwrap();
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn client_ids_are_c_and_digits() {
        assert!(is_client("c1") && is_client("c42"));
        assert!(!is_client("c") && !is_client("n1") && !is_client("cx") && !is_client("lin-kv"));
    }
}
