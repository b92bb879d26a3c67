#!/usr/bin/env python3
"""The lin-kv workload through lin-kv with a local read cache, BROKEN: a node answers
reads of a key from the last value it saw itself. Another node's later write never
reaches this cache, so reads go stale: not linearizable."""

import threading

from maelstrom_node import Node, RPCError

node = Node()
cache = {}
lock = threading.Lock()


def remember(key, value):
    with lock:
        cache[key] = value


def on_read(msg):
    key = msg["body"]["key"]
    with lock:
        if key in cache:
            node.reply(msg, {"type": "read_ok", "value": cache[key]})
            return
    try:
        answer = node.rpc_sync("lin-kv", {"type": "read", "key": key})
    except RPCError as e:
        node.error(msg, e.code, e.text)
        return
    remember(key, answer["value"])
    node.reply(msg, {"type": "read_ok", "value": answer["value"]})


def on_write(msg):
    b = msg["body"]
    try:
        node.rpc_sync("lin-kv", {"type": "write", "key": b["key"], "value": b["value"]})
    except RPCError as e:
        node.error(msg, e.code, e.text)
        return
    remember(b["key"], b["value"])
    node.reply(msg, {"type": "write_ok"})


def on_cas(msg):
    b = msg["body"]
    try:
        node.rpc_sync("lin-kv", {"type": "cas", "key": b["key"], "from": b["from"], "to": b["to"]})
    except RPCError as e:
        node.error(msg, e.code, e.text)
        return
    remember(b["key"], b["to"])
    node.reply(msg, {"type": "cas_ok"})


node.on("read", on_read, waits=True)
node.on("write", on_write, waits=True)
node.on("cas", on_cas, waits=True)
node.run()
