#!/usr/bin/env python3
"""Unique ids, correct: the node id, a random tag drawn at every start (so a restarted
node never repeats what its earlier life handed out) and a counter."""

import itertools
import uuid

from maelstrom_node import Node

node = Node()
life = uuid.uuid4().hex[:12]
counter = itertools.count()
node.on("generate", lambda msg: node.reply(
    msg, {"type": "generate_ok", "id": f"{node.node_id}-{life}-{next(counter)}"}))
node.run()
