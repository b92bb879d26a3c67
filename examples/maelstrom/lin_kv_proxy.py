#!/usr/bin/env python3
"""The lin-kv workload answered by proxying every request to the lin-kv service,
correct: each request is forwarded as it is, and its answer (value or error) is sent
back. A request lin-kv does not answer in time may still have happened there, so the
client gets an indefinite timeout error."""

from maelstrom_node import Node, RPCError

node = Node()


def proxy(msg):
    body = {k: v for k, v in msg["body"].items() if k != "msg_id"}
    try:
        answer = node.rpc_sync("lin-kv", body, timeout=1.0)
    except RPCError as e:
        node.error(msg, e.code, e.text)
        return
    node.reply(msg, {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")})


for t in ("read", "write", "cas"):
    node.on(t, proxy, waits=True)
node.run()
