#!/usr/bin/env python3
"""distest client for Redis with Sentinel (Python standard library only).

Speaks distest's client protocol (docs/targets.md) on stdin/stdout and Redis's RESP over
TCP. Like an application using Sentinel, it asks the Sentinel on its own node which
server is the master, then sends every op there:

  set       add -> SADD s E             read -> SMEMBERS s
  register  read -> GET r:K  write -> SET r:K V  cas -> a Lua script comparing first

Outcomes are honest: a connection that cannot be opened or a Redis error reply (the
server refused: READONLY, NOREPLICAS, ...) means the op did not happen: fail. A timeout or
a connection lost after the command was sent means it may have happened: info.
"""
import json
import socket
import sys

SENTINEL_PORT = 26379
MASTER = "mymaster"
TIMEOUT_S = 2.0
CAS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end"
)


class Refused(Exception):
    """The op certainly did not happen."""


class Unknown(Exception):
    """The op may or may not have happened."""


class RedisError(Exception):
    """An error reply from the server."""


class Conn:
    def __init__(self, host, port):
        try:
            self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        except OSError as e:
            raise Refused(f"connect {host}:{port}: {e}")
        self.file = self.sock.makefile("rb")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        try:
            self.sock.sendall(b"".join(parts))
        except OSError as e:
            raise Unknown(f"send: {e}")
        try:
            return self.reply()
        except (OSError, EOFError, ValueError) as e:
            raise Unknown(f"reply: {e}")

    def reply(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            if len(data) != n + 2:
                raise EOFError("connection closed mid-reply")
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected reply {line!r}")


class Client:
    def __init__(self, ip):
        self.ip = ip
        self.master = None

    def master_conn(self):
        if self.master is None:
            sentinel = Conn(self.ip, SENTINEL_PORT)
            try:
                addr = sentinel.call("SENTINEL", "get-master-addr-by-name", MASTER)
            except (Unknown, RedisError) as e:
                raise Refused(f"sentinel on {self.ip}: {e}")
            finally:
                sentinel.close()
            if not addr:
                raise Refused(f"sentinel on {self.ip} knows no master")
            self.master = Conn(addr[0], int(addr[1]))
        return self.master

    def drop(self):
        if self.master is not None:
            self.master.close()
            self.master = None

    def run(self, op):
        conn = self.master_conn()
        f, value = op["f"], op.get("value")
        if "key" in op:
            key = "r:" + op["key"]
            if f == "read":
                v = conn.call("GET", key)
                return None if v is None else int(v)
            if f == "write":
                conn.call("SET", key, value)
                return value
            if f == "cas":
                if conn.call("EVAL", CAS, 1, key, value[0], value[1]) != 1:
                    raise RedisError("cas-mismatch: current value differs")
                return value
        elif f == "add":
            conn.call("SADD", "s", value)
            return value
        elif f == "read":
            return sorted(int(e) for e in conn.call("SMEMBERS", "s"))
        raise RedisError(f"unknown op {f}")

    def invoke(self, op):
        try:
            return {"type": "ok", "value": self.run(op)}
        except Refused as e:
            self.drop()
            return {"type": "fail", "error": str(e)}
        except RedisError as e:
            # The server answered with an error: it did not apply the command. A replica
            # (READONLY) means the master moved: ask the sentinel again next time.
            if not str(e).startswith("cas-mismatch"):
                self.drop()
            return {"type": "fail", "error": str(e)}
        except Unknown as e:
            self.drop()
            return {"type": "info", "error": str(e)}


def main():
    client = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "open":
            client = Client(msg["ip"])
            answer = {"type": "ok"}
        else:
            answer = client.invoke(msg)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
