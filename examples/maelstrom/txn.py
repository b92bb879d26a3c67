#!/usr/bin/env python3
"""The txn-list-append and txn-rw-register workloads with one authoritative copy,
strict serializable: the first node of `node_ids` runs every transaction, one at a
time, on its in-memory map; the other nodes forward transactions to it and relay the
answers. A forwarded transaction that gets no answer may have committed (indefinite).
State is in memory: killing the first node loses it."""

import threading

from maelstrom_node import Node, RPCError, CRASH

node = Node()
lock = threading.Lock()
data = {}


def execute(txn):
    out = []
    with lock:
        for f, k, v in txn:
            key = str(k)
            if f == "r":
                current = data.get(key)
                out.append([f, k, list(current) if isinstance(current, list) else current])
            elif f == "append":
                data.setdefault(key, []).append(v)
                out.append([f, k, v])
            elif f == "w":
                data[key] = v
                out.append([f, k, v])
            else:
                raise RPCError(12, f"unknown micro-op {f!r}")
    return out


def on_txn(msg):
    txn = msg["body"]["txn"]
    leader = node.node_ids[0]
    if node.node_id == leader:
        node.reply(msg, {"type": "txn_ok", "txn": execute(txn)})
        return
    try:
        answer = node.rpc_sync(leader, {"type": "run_txn", "txn": txn})
    except RPCError as e:
        node.error(msg, e.code if e.code else CRASH, f"the leader {leader} did not answer: {e.text}")
        return
    node.reply(msg, {"type": "txn_ok", "txn": answer["txn"]})


node.on("txn", on_txn, waits=True)
node.on("run_txn", lambda msg: node.reply(msg, {"type": "run_txn_ok", "txn": execute(msg["body"]["txn"])}))
node.run()
