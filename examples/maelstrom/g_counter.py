#!/usr/bin/env python3
"""A grow-only counter on the seq-kv service, correct.

Each node keeps its own total under its node id in seq-kv and only ever adds to it with
compare-and-set; a read sums every node's total. seq-kv may answer reads from the past,
so a read first writes a fresh key: a write always lands on seq-kv's newest state, and
from then on this client never sees an older one. All state lives in seq-kv, so a
killed and restarted node loses nothing."""

import itertools

from maelstrom_node import Node, RPCError, KEY_DOES_NOT_EXIST, PRECONDITION_FAILED, TEMPORARILY_UNAVAILABLE

node = Node()
syncs = itertools.count()


def total_of(n):
    try:
        return node.rpc_sync("seq-kv", {"type": "read", "key": n})["value"]
    except RPCError as e:
        if e.code == KEY_DOES_NOT_EXIST:
            return 0
        raise


def on_add(msg):
    delta = msg["body"]["delta"]
    for _ in range(100):
        current = total_of(node.node_id)
        try:
            node.rpc_sync("seq-kv", {"type": "cas", "key": node.node_id, "from": current,
                                     "to": current + delta, "create_if_not_exists": True})
            node.reply(msg, {"type": "add_ok"})
            return
        except RPCError as e:
            if e.code != PRECONDITION_FAILED:
                raise  # a timeout: the add may have happened (indefinite)
    node.error(msg, 13, "gave up after 100 conflicting compare-and-sets")


def on_read(msg):
    try:
        node.rpc_sync("seq-kv", {"type": "write", "key": f"sync-{node.node_id}",
                                 "value": f"{next(syncs)}"})
        value = sum(total_of(n) for n in node.node_ids)
    except RPCError as e:
        # A read that could not finish changed nothing: a definite error.
        node.error(msg, TEMPORARILY_UNAVAILABLE, f"seq-kv unreachable: {e.text}")
        return
    node.reply(msg, {"type": "read_ok", "value": value})


node.on("add", on_add, waits=True)
node.on("read", on_read, waits=True)
node.run()
