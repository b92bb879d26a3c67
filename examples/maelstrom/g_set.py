#!/usr/bin/env python3
"""The g-set workload, correct: a grow-only set replicated by gossip (gossip_set.py),
retransmitted until acknowledged, so every node ends up with every element."""

from gossip_set import GossipSet
from maelstrom_node import Node

node = Node()
elements = GossipSet(node)


def on_add(msg):
    elements.add([msg["body"]["element"]])
    node.reply(msg, {"type": "add_ok"})


node.on("add", on_add)
node.on("read", lambda msg: node.reply(msg, {"type": "read_ok", "value": elements.read()}))
node.run()
