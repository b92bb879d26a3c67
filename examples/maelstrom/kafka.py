#!/usr/bin/env python3
"""The kafka workload with one authoritative copy, correct under partitions: the first
node of `node_ids` holds every log and every committed offset; the other nodes forward
requests to it and relay its answers. A forwarded read that gets no answer changed
nothing (a definite error); a send or commit that gets no answer may have happened (an
indefinite one). State is in memory: killing the first node loses it."""

import threading

from maelstrom_node import Node, RPCError, CRASH, TEMPORARILY_UNAVAILABLE

node = Node()
lock = threading.Lock()
logs = {}        # key -> list of [offset, msg], offsets dense from 0
committed = {}   # key -> highest committed offset
POLL_LIMIT = 10


def leader():
    return node.node_ids[0]


def handle(body):
    """Answers a kafka request on the leader; returns the reply body."""
    t = body["type"]
    with lock:
        if t == "send":
            log = logs.setdefault(body["key"], [])
            log.append([len(log), body["msg"]])
            return {"type": "send_ok", "offset": len(log) - 1}
        if t == "poll":
            msgs = {}
            for key, start in body["offsets"].items():
                records = [r for r in logs.get(key, []) if r[0] >= start][:POLL_LIMIT]
                if records:
                    msgs[key] = records
            return {"type": "poll_ok", "msgs": msgs}
        if t == "commit_offsets":
            for key, offset in body["offsets"].items():
                committed[key] = max(committed.get(key, -1), offset)
            return {"type": "commit_offsets_ok"}
        if t == "list_committed_offsets":
            return {"type": "list_committed_offsets_ok",
                    "offsets": {k: committed[k] for k in body["keys"] if k in committed}}
    raise RPCError(10, f"unknown request type {t!r}")


def on_request(msg):
    body = {k: v for k, v in msg["body"].items() if k != "msg_id"}
    if node.node_id == leader():
        node.reply(msg, handle(body))
        return
    try:
        answer = node.rpc_sync(leader(), dict(body, type="forward:" + body["type"]))
    except RPCError as e:
        reads = ("poll", "list_committed_offsets")
        code = TEMPORARILY_UNAVAILABLE if body["type"] in reads and e.code == 0 else e.code
        node.error(msg, code if code else CRASH, f"the leader {leader()} did not answer: {e.text}")
        return
    node.reply(msg, {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")})


def on_forward(msg):
    body = dict(msg["body"])
    body["type"] = body["type"].split(":", 1)[1]
    node.reply(msg, handle(body))


for t in ("send", "poll", "commit_offsets", "list_committed_offsets"):
    node.on(t, on_request, waits=True)
    node.on("forward:" + t, on_forward)
node.run()
