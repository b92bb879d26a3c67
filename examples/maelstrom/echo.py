#!/usr/bin/env python3
"""Maelstrom's echo workload: answer every echo with the same payload."""

from maelstrom_node import Node

node = Node()
node.on("echo", lambda msg: node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]}))
node.run()
