#!/usr/bin/env python3
"""Unique ids, BROKEN: the id is the wall clock in milliseconds. Two nodes asked in the
same millisecond (or one node after its clock was set back) hand out the same id."""

import time

from maelstrom_node import Node

node = Node()
node.on("generate", lambda msg: node.reply(
    msg, {"type": "generate_ok", "id": int(time.time() * 1000)}))
node.run()
