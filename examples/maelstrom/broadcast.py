#!/usr/bin/env python3
"""Broadcast, correct: every message a node learns is gossiped to its neighbours until
each neighbour has acknowledged it, so messages cross partitions once they heal.

Neighbours are the `topology` the workload sends (all other nodes when there is none).
State is in memory only: a killed node forgets what it knew."""

import threading

from maelstrom_node import Node

node = Node()
lock = threading.Lock()
messages = set()
neighbours = []
# neighbour -> messages it is known to have
known = {}


def on_topology(msg):
    with lock:
        neighbours[:] = msg["body"]["topology"].get(node.node_id, [])
    node.reply(msg, {"type": "topology_ok"})


def learn(new):
    with lock:
        messages.update(new)


def on_broadcast(msg):
    learn([msg["body"]["message"]])
    node.reply(msg, {"type": "broadcast_ok"})


def on_read(msg):
    with lock:
        current = sorted(messages)
    node.reply(msg, {"type": "read_ok", "messages": current})


def on_gossip(msg):
    learn(msg["body"]["messages"])
    node.reply(msg, {"type": "gossip_ok", "messages": msg["body"]["messages"]})


def gossip():
    with lock:
        peers = list(neighbours) or [n for n in node.node_ids if n != node.node_id]
        batches = {p: sorted(messages - known.get(p, set())) for p in peers}
    for peer, batch in batches.items():
        if not batch:
            continue

        def acked(reply, peer=peer):
            with lock:
                known.setdefault(peer, set()).update(reply["body"]["messages"])

        node.rpc(peer, {"type": "gossip", "messages": batch[:500]}, acked)


node.on("topology", on_topology)
node.on("broadcast", on_broadcast)
node.on("read", on_read)
node.on("gossip", on_gossip)
node.every(0.1, gossip)
node.run()
