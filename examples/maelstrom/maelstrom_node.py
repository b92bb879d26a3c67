"""A small Maelstrom node library (standard library only) for the example nodes.

A node reads JSON messages from stdin, one per line, and writes messages to stdout;
anything else goes to stderr. Handlers and RPC callbacks run on the reading thread, in
the order messages arrive; a handler registered with `waits=True` runs on a thread of its
own instead, so it may wait for the answer to an RPC it sent (`rpc_sync`) while the
reading goes on. (A thread for every message would make a busy node slow on a loaded
machine: each message would wait for its turn at Python's interpreter lock.)
"""

import itertools
import json
import sys
import threading


class RPCError(Exception):
    """An error body received in reply to an RPC (or a timeout, code 0)."""

    def __init__(self, code, text):
        super().__init__(f"error {code}: {text}")
        self.code = code
        self.text = text


# Maelstrom's error codes used by the examples.
TIMEOUT = 0
TEMPORARILY_UNAVAILABLE = 11
CRASH = 13
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22


class Node:
    def __init__(self):
        self.node_id = None
        self.node_ids = []
        self._handlers = {}
        self._callbacks = {}
        self._ids = itertools.count(1)
        self._out = threading.Lock()
        self._lock = threading.Lock()
        self._init_hooks = []
        self.on("init", self._init)

    def log(self, text):
        print(text, file=sys.stderr, flush=True)

    def on(self, msg_type, handler, waits=False):
        """Calls handler(msg) for every message whose body type is msg_type; on a thread
        of its own with waits=True (a handler that calls rpc_sync must say so)."""
        self._handlers[msg_type] = (handler, waits)

    def on_init(self, hook):
        """Calls hook() once init is answered."""
        self._init_hooks.append(hook)

    def _init(self, msg):
        body = msg["body"]
        self.node_id = body["node_id"]
        self.node_ids = body["node_ids"]
        self.reply(msg, {"type": "init_ok"})
        for hook in self._init_hooks:
            hook()

    def send(self, dest, body):
        line = json.dumps({"src": self.node_id, "dest": dest, "body": body})
        with self._out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, req, body):
        body = dict(body)
        body["in_reply_to"] = req["body"].get("msg_id")
        self.send(req["src"], body)

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def rpc(self, dest, body, callback):
        """Sends body to dest; callback(reply) runs when the reply comes (if ever)."""
        msg_id = next(self._ids)
        with self._lock:
            self._callbacks[msg_id] = callback
        self.send(dest, dict(body, msg_id=msg_id))
        return msg_id

    def rpc_sync(self, dest, body, timeout=1.0):
        """Sends body to dest and returns the reply body; raises RPCError for an error
        reply or when no reply comes within timeout seconds."""
        done = threading.Event()
        box = {}

        def got(reply):
            box["reply"] = reply
            done.set()

        msg_id = self.rpc(dest, body, got)
        if not done.wait(timeout):
            with self._lock:
                self._callbacks.pop(msg_id, None)
            raise RPCError(TIMEOUT, f"no reply from {dest} within {timeout} s")
        reply = box["reply"]["body"]
        if reply.get("type") == "error":
            raise RPCError(reply.get("code"), reply.get("text"))
        return reply

    def every(self, seconds, task):
        """Runs task() every `seconds` on a background thread."""

        def loop():
            while True:
                threading.Event().wait(seconds)
                try:
                    task()
                except Exception as e:  # keep the node alive; say what went wrong
                    self.log(f"periodic task failed: {e!r}")

        threading.Thread(target=loop, daemon=True).start()

    def _dispatch(self, msg):
        body = msg["body"]
        reply_to = body.get("in_reply_to")
        if reply_to is not None:
            with self._lock:
                callback = self._callbacks.pop(reply_to, None)
            if callback is not None:
                callback(msg)
            return
        handler, _ = self._handlers.get(body.get("type"), (None, False))
        if handler is None:
            self.error(msg, 10, f"no handler for {body.get('type')!r}")
            return
        try:
            handler(msg)
        except RPCError as e:
            # Timeouts and crashes may have had effects: indefinite.
            self.error(msg, CRASH if e.code in (TIMEOUT, CRASH) else e.code, e.text)
        except Exception as e:
            self.error(msg, CRASH, repr(e))

    def run(self):
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            msg = json.loads(line)
            body = msg["body"]
            _, waits = self._handlers.get(body.get("type"), (None, False))
            if waits and body.get("in_reply_to") is None:
                threading.Thread(target=self._dispatch, args=(msg,), daemon=True).start()
            else:
                self._dispatch(msg)
