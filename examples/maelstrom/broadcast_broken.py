#!/usr/bin/env python3
"""Broadcast, BROKEN: a message is forwarded once, fire and forget. A message sent while
a partition cuts the way to a neighbour never reaches it (nor anyone behind it), so after
the heal the nodes disagree: acknowledged messages are lost on some nodes."""

import threading

from maelstrom_node import Node

node = Node()
lock = threading.Lock()
messages = set()
neighbours = []


def on_topology(msg):
    with lock:
        neighbours[:] = msg["body"]["topology"].get(node.node_id, [])
    node.reply(msg, {"type": "topology_ok"})


def spread(message, came_from):
    with lock:
        if message in messages:
            return
        messages.add(message)
        peers = [n for n in (neighbours or node.node_ids) if n not in (node.node_id, came_from)]
    for peer in peers:
        node.send(peer, {"type": "forward", "message": message})


def on_broadcast(msg):
    spread(msg["body"]["message"], None)
    node.reply(msg, {"type": "broadcast_ok"})


def on_read(msg):
    with lock:
        current = sorted(messages)
    node.reply(msg, {"type": "read_ok", "messages": current})


node.on("topology", on_topology)
node.on("broadcast", on_broadcast)
node.on("read", on_read)
node.on("forward", lambda msg: spread(msg["body"]["message"], msg["src"]))
node.run()
