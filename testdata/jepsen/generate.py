#!/usr/bin/env python3
"""Writes the sample Jepsen histories in this directory (deterministic; seed fixed).

cas-register.edn / cas-register.log: one cas-register run, 5 clients and a partition
nemesis, as Jepsen's history.edn (one op map per line) and as its jepsen.log text log.
The register is simulated, each op taking effect at its completion, so the history is
linearizable; timed-out ops (:info, :timed-out) took effect or not at random.
list-append.edn: an Elle list-append history written as one vector of op maps.
"""
import random

rng = random.Random(7)
START_MS = 1714557600000  # 2024-05-01 10:00:00 UTC


def kw(s):
    return ":" + s


def edn(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return v  # already EDN text (keywords)
    if isinstance(v, list):
        return "[" + " ".join(edn(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{edn(k)} {edn(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def op_map(op):
    fields = [(":index", op["index"]), (":time", op["time"]), (":type", kw(op["type"])),
              (":process", op["process"] if isinstance(op["process"], int) else ":nemesis"),
              (":f", kw(op["f"])), (":value", op["value"])]
    if "error" in op:
        fields.append((":error", op["error"]))
    return "{" + ", ".join(f"{k} {edn(v)}" for k, v in fields) + "}"


def cas_register():
    ops, state, pending, t_ms = [], None, {}, 0
    procs = list(range(5))
    next_proc = 5
    nemesis_at = {40: ("start", None, '[:isolated {"n1" #{"n4" "n5"}, "n2" #{"n4" "n5"}, "n3" #{"n4" "n5"}, "n4" #{"n1" "n2" "n3"}, "n5" #{"n1" "n2" "n3"}}]'),
                  90: ("stop", None, ":network-healed")}

    def emit(**op):
        op["index"] = len(ops)
        op["time"] = t_ms * 1_000_000
        ops.append(op)

    while len(ops) < 140:
        t_ms += rng.randint(1, 4)
        if len(ops) in nemesis_at:
            f, inv, done = nemesis_at.pop(len(ops))
            emit(type="info", f=f, process="nemesis", value=inv)
            t_ms += 1
            emit(type="info", f=f, process="nemesis", value=done)
            continue
        i = rng.randrange(len(procs))
        p = procs[i]
        if p not in pending:
            f = rng.choice(["read", "write", "cas"])
            v = None if f == "read" else rng.randint(0, 4) if f == "write" else [rng.randint(0, 4), rng.randint(0, 4)]
            pending[p] = (f, v)
            emit(type="invoke", f=f, process=p, value=v)
            continue
        f, v = pending.pop(p)
        partitioned = 40 <= len(ops) < 90
        if partitioned and rng.random() < 0.3:
            if f != "read" and rng.random() < 0.5:
                state = v if f == "write" else (v[1] if state == v[0] else state)
            emit(type="info", f=f, process=p, value=v, error=":timed-out")
            procs[i] = next_proc  # Jepsen retires a process after :info
            next_proc += 1
        elif f == "read":
            emit(type="ok", f=f, process=p, value=state)
        elif f == "write":
            state = v
            emit(type="ok", f=f, process=p, value=v)
        elif state == v[0]:
            state = v[1]
            emit(type="ok", f=f, process=p, value=v)
        else:
            emit(type="fail", f=f, process=p, value=v)
    # Jepsen's :time counts from the test's start: make the first op's time 0 so the
    # log's timestamps (counted from the first op line) give the same times.
    first = ops[0]["time"]
    for op in ops:
        op["time"] -= first
    return ops


def log_line(op):
    ts = START_MS + op["time"] // 1_000_000
    secs, ms = divmod(ts, 1000)
    import time
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f",{ms:03d}"
    proc = op["process"] if isinstance(op["process"], int) else ":nemesis"
    thread = "jepsen nemesis" if proc == ":nemesis" else f"jepsen worker {proc % 5}"
    text = f"{proc}\t{kw(op['type'])}\t{kw(op['f'])}\t{edn(op['value'])}"
    if "error" in op:
        text += "\t" + op["error"]
    return f"{stamp}{{GMT}}\tINFO\t[{thread}] jepsen.util: {text}"


def list_append():
    ops, lists, pending, t = [], {}, {}, 0
    procs = list(range(4))
    counter = 0
    while len(ops) < 80:
        t += rng.randint(100_000, 900_000)
        p = rng.choice(procs)
        if p not in pending:
            txn = []
            for _ in range(rng.randint(1, 3)):
                k = rng.randint(1, 3)
                if rng.random() < 0.5:
                    counter += 1
                    txn.append(["append", k, counter])
                else:
                    txn.append(["r", k, None])
            pending[p] = txn
            ops.append(dict(type="invoke", f="txn", process=p, value=txn, time=t))
            continue
        txn = pending.pop(p)
        done = []
        for f, k, v in txn:
            if f == "append":
                lists.setdefault(k, []).append(v)
                done.append([f, k, v])
            else:
                done.append([f, k, list(lists.get(k, []))])
        ops.append(dict(type="ok", f="txn", process=p, value=done, time=t))
    for i, op in enumerate(ops):
        op["index"] = i

    def mop(m):
        f, k, v = m
        return f"[:{f} {k} {edn(v)}]"

    lines = []
    for op in ops:
        value = "[" + " ".join(mop(m) for m in op["value"]) + "]"
        lines.append(f"{{:type :{op['type']}, :f :txn, :value {value}, :time {op['time']}, :process {op['process']}, :index {op['index']}}}")
    return "[" + "\n ".join(lines) + "]\n"


if __name__ == "__main__":
    ops = cas_register()
    with open("cas-register.edn", "w") as f:
        for op in ops:
            f.write(op_map(op) + "\n")
    with open("cas-register.log", "w") as f:
        f.write(f"2024-05-01 09:59:59,812{{GMT}}\tINFO\t[main] jepsen.core: Running test cas-register\n")
        f.write(f"2024-05-01 09:59:59,990{{GMT}}\tINFO\t[main] jepsen.db: Setting up etcd on n1 n2 n3 n4 n5\n")
        for op in ops:
            f.write(log_line(op) + "\n")
            if op.get("error"):
                f.write("\tat clojure.core$ex_info.invokeStatic(core.clj:4617)\n")
        f.write("2024-05-01 10:00:01,402{GMT}\tINFO\t[main] jepsen.core: Run complete, writing\n")
    with open("list-append.edn", "w") as f:
        f.write(list_append())
