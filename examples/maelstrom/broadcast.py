#!/usr/bin/env python3
"""Broadcast, correct: messages are kept in a gossiped grow-only set (gossip_set.py),
retransmitted to each neighbour until it acknowledges them, so they cross partitions
once they heal. State is in memory only: a killed node forgets what it knew."""

from gossip_set import GossipSet
from maelstrom_node import Node

node = Node()
messages = GossipSet(node)


def on_broadcast(msg):
    messages.add([msg["body"]["message"]])
    node.reply(msg, {"type": "broadcast_ok"})


node.on("broadcast", on_broadcast)
node.on("read", lambda msg: node.reply(msg, {"type": "read_ok", "messages": messages.read()}))
node.run()
