#!/usr/bin/env node
// distest client for etcd (Node.js standard library only), through etcd's v3 JSON gateway.
//
// The same mapping as distest's built-in etcd adapter (src/targets/etcd.rs), so the two can
// be compared run for run: values are stored as JSON text, base64-encoded as the gateway
// wants; cas is a txn comparing the value; list-append and rw-register transactions read
// their keys, then commit only if no key's mod_revision changed (optimistic concurrency).
//
// Outcomes: a request that never reached etcd (connection refused) or a read that failed
// is `fail`; a write whose request timed out or came back with an error status may have
// been applied: `info`; an aborted txn or a cas whose comparison failed is `fail`.
"use strict";

const http = require("http");
const readline = require("readline");

const PORT = 2379;
const TIMEOUT_MS = 4000;

let base = null;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const b64 = (s) => Buffer.from(s, "utf8").toString("base64");
const keyB64 = (k) => b64(typeof k === "string" ? k : JSON.stringify(k));
const valueB64 = (v) => b64(JSON.stringify(v));

function decode(kv) {
  if (!kv || typeof kv.value !== "string") return null;
  try {
    return JSON.parse(Buffer.from(kv.value, "base64").toString("utf8"));
  } catch (e) {
    return null;
  }
}

class Outcome extends Error {
  constructor(type, error) {
    super(typeof error === "string" ? error : JSON.stringify(error));
    this.type = type;
    this.detail = error;
  }
}

// POSTs a JSON body; resolves with the JSON answer of a 2xx, rejects with an Outcome.
function post(path, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    let sent = false;
    const req = http.request(
      base + path,
      {
        method: "POST",
        agent,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) },
        timeout: TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          let parsed;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch (e) {
            return reject(new Outcome("info", `unreadable answer: ${e.message}`));
          }
          if (res.statusCode >= 200 && res.statusCode < 300) resolve(parsed);
          else reject(new Outcome("info", { status: res.statusCode, body: parsed }));
        });
        res.on("error", (e) => reject(new Outcome("info", `transport: ${e.message}`)));
      }
    );
    // A reused keep-alive socket is connected already; a new one says when it is.
    req.on("socket", (s) => {
      if (!s.connecting) sent = true;
      else s.once("connect", () => (sent = true));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => {
      const refused = ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"].includes(e.code);
      if (refused && !sent) reject(new Outcome("fail", `connect: ${e.message}`));
      else if (e.message === "timeout") reject(new Outcome("info", "timeout"));
      else reject(new Outcome("info", `transport: ${e.message}`));
    });
    req.end(data);
  });
}

// Reads fail, never info: a read that did not complete changed nothing.
const asFail = (e) => {
  throw e instanceof Outcome ? new Outcome("fail", e.detail) : e;
};

async function range(key) {
  const body = await post("/v3/kv/range", { key: keyB64(key) });
  const kv = body.kvs && body.kvs[0];
  return kv ? [decode(kv), Number(kv.mod_revision || 0)] : [null, 0];
}

async function txn(mops) {
  const keys = [...new Set(mops.map((m) => JSON.stringify(m[1])))].sort();
  const state = new Map();
  for (const k of keys) state.set(k, await range(JSON.parse(k)).catch(asFail));
  const revisions = new Map([...state].map(([k, [, rev]]) => [k, rev]));
  const done = [];
  const written = new Map();
  for (const [f, k, v] of mops) {
    const id = JSON.stringify(k);
    const entry = state.get(id);
    if (f === "r") done.push(["r", k, entry[0]]);
    else if (f === "append" || f === "w") {
      entry[0] = f === "append" ? [...(Array.isArray(entry[0]) ? entry[0] : []), v] : v;
      written.set(id, [k, entry[0]]);
      done.push([f, k, v]);
    } else throw new Outcome("fail", `unknown micro-op ${f}`);
  }
  if (written.size === 0) return done;
  const compare = keys.map((k) => ({
    key: keyB64(JSON.parse(k)),
    target: "MOD",
    result: "EQUAL",
    mod_revision: String(revisions.get(k)),
  }));
  const success = [...written.values()].map(([k, v]) => ({
    request_put: { key: keyB64(k), value: valueB64(v) },
  }));
  const body = await post("/v3/kv/txn", { compare, success });
  if (body.succeeded === true) return done;
  throw new Outcome("fail", "txn-conflict");
}

async function run(op) {
  const key = op.key === undefined ? "set" : op.key;
  switch (op.f) {
    case "read":
      return (await range(key).catch(asFail))[0];
    case "write":
      await post("/v3/kv/put", { key: keyB64(key), value: valueB64(op.value) });
      return op.value;
    case "cas": {
      const [old, next] = op.value;
      const compare =
        old === null
          ? { key: keyB64(key), target: "VERSION", result: "EQUAL", version: "0" }
          : { key: keyB64(key), target: "VALUE", result: "EQUAL", value: valueB64(old) };
      const body = await post("/v3/kv/txn", {
        compare: [compare],
        success: [{ request_put: { key: keyB64(key), value: valueB64(next) } }],
      });
      if (body.succeeded === true) return op.value;
      throw new Outcome("fail", "cas-mismatch");
    }
    case "txn":
      return txn(op.value);
    default:
      throw new Outcome("fail", `the etcd client has no op ${op.f}`);
  }
}

// One message at a time, in order: distest sends the next op only after an answer. When
// stdin closes, what was read is still answered, then the client exits.
const lines = readline.createInterface({ input: process.stdin, terminal: false });
const queue = [];
let busy = false;
let closed = false;
const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function handle(msg) {
  if (msg.type === "open") {
    base = `http://${msg.ip}:${PORT}`;
    return send({ type: "ok" });
  }
  try {
    send({ type: "ok", value: await run(msg) });
  } catch (e) {
    if (e instanceof Outcome) send({ type: e.type, error: e.detail });
    else send({ type: "info", error: String(e) });
  }
}

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length > 0) await handle(queue.shift());
  busy = false;
  if (closed) {
    agent.destroy();
    process.exit(0);
  }
}

lines.on("line", (line) => {
  queue.push(JSON.parse(line));
  drain();
});
lines.on("close", () => {
  closed = true;
  drain();
});
