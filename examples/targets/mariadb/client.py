#!/usr/bin/env python3
"""distest client for MariaDB (Python standard library only).

Speaks distest's client protocol (docs/targets.md) on stdin/stdout and the MySQL client
protocol over TCP: the handshake with mysql_native_password, then text queries
(COM_QUERY). Each distest transaction is one database transaction:

  list-append  ["append", k, v] -> INSERT ... ON DUPLICATE KEY UPDATE v = CONCAT(v, ',', ...)
               ["r", k, null]   -> SELECT v ... (the list, or null when the row is absent)
  rw-register  ["w", k, v]      -> INSERT ... ON DUPLICATE KEY UPDATE v = ...
               ["r", k, null]   -> SELECT v ... (the value, or null)

The isolation level is the server's (the target file passes --set isolation to mariadbd).

Outcomes are honest: anything that goes wrong before COMMIT is sent (an error reply, a
deadlock, a lost connection) leaves the transaction uncommitted — the client rolls back,
or the server does when the connection drops — so it is `fail`. If COMMIT itself gets
no answer, the transaction may or may not have committed: `info`.
"""
import hashlib
import json
import socket
import struct
import sys

PORT = 3306
USER = "distest"
PASSWORD = "distest"
DATABASE = "distest"
TIMEOUT_S = 4.0

CLIENT_LONG_PASSWORD = 0x1
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
UTF8MB4 = 45


class Refused(Exception):
    """Definitely not applied."""


class Unknown(Exception):
    """May or may not have been applied."""


class ServerError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def scramble(password, seed):
    """mysql_native_password: SHA1(pw) XOR SHA1(seed + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(seed + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def lenenc_int(data, pos):
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return struct.unpack_from("<H", data, pos + 1)[0], pos + 3
    if first == 0xFD:
        return int.from_bytes(data[pos + 1 : pos + 4], "little"), pos + 4
    if first == 0xFE:
        return struct.unpack_from("<Q", data, pos + 1)[0], pos + 9
    raise ValueError(f"bad length-encoded integer 0x{first:02x}")


class Conn:
    def __init__(self, host):
        try:
            self.sock = socket.create_connection((host, PORT), timeout=TIMEOUT_S)
        except OSError as e:
            raise Refused(f"connect {host}:{PORT}: {e}")
        self.file = self.sock.makefile("rb")
        self.seq = 0
        try:
            self.handshake()
        except (OSError, EOFError, ValueError) as e:
            self.close()
            raise Refused(f"handshake with {host}: {e}")
        except ServerError as e:
            self.close()
            raise Refused(f"login to {host}: {e}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def read_packet(self):
        header = self.file.read(4)
        if len(header) < 4:
            raise EOFError("connection closed")
        length = int.from_bytes(header[:3], "little")
        self.seq = (header[3] + 1) & 0xFF
        body = self.file.read(length)
        if len(body) < length:
            raise EOFError("connection closed mid-packet")
        return body

    def write_packet(self, body):
        self.sock.sendall(len(body).to_bytes(3, "little") + bytes([self.seq]) + body)
        self.seq = (self.seq + 1) & 0xFF

    def handshake(self):
        p = self.read_packet()
        if p[0] == 0xFF:
            raise self.error(p)
        pos = p.index(b"\0", 1) + 1  # protocol version, server version
        pos += 4  # connection id
        seed = p[pos : pos + 8]
        pos += 9  # seed part 1, filler
        pos += 2 + 1 + 2 + 2  # capabilities (low), charset, status, capabilities (high)
        seed_len = p[pos]
        pos += 1 + 10
        part2 = max(13, seed_len - 8)
        seed += p[pos : pos + part2 - 1]  # without its trailing NUL
        flags = (
            CLIENT_LONG_PASSWORD
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
        )
        auth = scramble(PASSWORD, seed)
        body = struct.pack("<IIB", flags, 1 << 24, UTF8MB4) + b"\0" * 23
        body += USER.encode() + b"\0" + bytes([len(auth)]) + auth
        body += DATABASE.encode() + b"\0" + b"mysql_native_password\0"
        self.write_packet(body)
        reply = self.read_packet()
        if reply[0] == 0xFE:  # auth switch: same plugin, fresh seed
            plugin_end = reply.index(b"\0", 1)
            new_seed = reply[plugin_end + 1 :].rstrip(b"\0")
            self.write_packet(scramble(PASSWORD, new_seed))
            reply = self.read_packet()
        if reply[0] == 0xFF:
            raise self.error(reply)

    @staticmethod
    def error(p):
        code = struct.unpack_from("<H", p, 1)[0]
        message = p[9:] if p[3:4] == b"#" else p[3:]
        return ServerError(code, message.decode(errors="replace"))

    def query(self, sql):
        """Runs one statement; returns its rows (lists of str or None), [] for none."""
        self.seq = 0
        self.write_packet(b"\x03" + sql.encode())
        p = self.read_packet()
        if p[0] == 0xFF:
            raise self.error(p)
        if p[0] == 0x00:
            return []
        columns, _ = lenenc_int(p, 0)
        for _ in range(columns):
            self.read_packet()
        p = self.read_packet()  # EOF after the column definitions
        rows = []
        while True:
            p = self.read_packet()
            if p[0] == 0xFE and len(p) < 9:
                return rows
            if p[0] == 0xFF:
                raise self.error(p)
            row, pos = [], 0
            for _ in range(columns):
                if p[pos] == 0xFB:
                    row.append(None)
                    pos += 1
                else:
                    n, pos = lenenc_int(p, pos)
                    row.append(p[pos : pos + n].decode())
                    pos += n
            rows.append(row)


class Client:
    def __init__(self, ip, workload):
        self.ip = ip
        self.workload = workload
        self.conn = None

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def micro_op(self, f, k, v):
        k = int(k)
        if f == "r":
            rows = self.conn.query(f"SELECT v FROM txn WHERE k = {k}")
            if not rows or rows[0][0] is None:
                return None
            if self.workload == "list-append":
                return [int(x) for x in rows[0][0].split(",")]
            return int(rows[0][0])
        v = int(v)
        if f == "append":
            self.conn.query(
                f"INSERT INTO txn (k, v) VALUES ({k}, '{v}') "
                f"ON DUPLICATE KEY UPDATE v = CONCAT(v, ',', '{v}')"
            )
        elif f == "w":
            self.conn.query(
                f"INSERT INTO txn (k, v) VALUES ({k}, '{v}') ON DUPLICATE KEY UPDATE v = '{v}'"
            )
        else:
            raise ValueError(f"unknown micro-op {f}")
        return v

    def txn(self, mops):
        if self.conn is None:
            self.conn = Conn(self.ip)
        try:
            self.conn.query("START TRANSACTION")
            done = [[f, k, self.micro_op(f, k, v)] for f, k, v in mops]
        except ServerError as e:
            # Deadlock, lock wait timeout, ...: roll back what is left of it.
            try:
                self.conn.query("ROLLBACK")
            except (ServerError, OSError, EOFError, ValueError):
                self.drop()
            raise Refused(str(e))
        except (OSError, EOFError, ValueError) as e:
            # No COMMIT was sent: the server rolls back when the connection goes.
            self.drop()
            raise Refused(f"before commit: {e}")
        try:
            self.conn.query("COMMIT")
        except ServerError as e:
            raise Refused(f"commit refused: {e}")
        except (OSError, EOFError, ValueError) as e:
            self.drop()
            raise Unknown(f"commit: {e}")
        return done

    def invoke(self, op):
        if op["f"] != "txn":
            return {"type": "fail", "error": f"the mariadb client has no op {op['f']}"}
        try:
            return {"type": "ok", "value": self.txn(op["value"])}
        except Refused as e:
            return {"type": "fail", "error": str(e)}
        except Unknown as e:
            return {"type": "info", "error": str(e)}


def main():
    client = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "open":
            client = Client(msg["ip"], msg.get("workload", "list-append"))
            try:
                client.conn = Conn(msg["ip"])
                answer = {"type": "ok"}
            except Refused as e:
                answer = {"type": "fail", "error": str(e)}
        else:
            answer = client.invoke(msg)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
