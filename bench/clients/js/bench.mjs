// Benchmark: the beuss JS client against ioredis on the same machine.
//
//   put       pipelined PUT of 32-byte messages, `window` requests in flight at a time,
//             against ioredis pipeline() LPUSH of the same windows
//   get       pipelined GET (max 1) of those messages, against pipeline() RPOP
//   consume   leased + acked messages/s through the beuss consumer (run(), concurrency 64)
//
// Starts its own beuss-server ($BEUSS_SERVER, else <repo>/target/release/beuss-server,
// built if missing) and redis-server ($REDIS_SERVER, else redis-server on PATH) on free
// loopback ports and ends them by pid. Prints one machine-readable line per figure:
//   client=js impl=beuss op=put round=1 msgs_per_s=...
// then medians and spread:
//   client=js impl=beuss op=put rounds=5 median_msgs_per_s=... min=... max=...
// Options (environment): N (messages per round, 100000), WINDOW (100), ROUNDS (5).
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import Redis from "ioredis";
import { connect } from "beuss";

const N = Number(process.env.N ?? 100_000);
const WINDOW = Number(process.env.WINDOW ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const payload = Buffer.alloc(32, 0x78);
const children = [];

function stopAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

/** Spawns `bin` and resolves once a line of its output matches `re`. */
function start(bin, args, env, stream, re) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let log = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${bin} not ready in 10 s:\n${log}`)), 10_000);
    child.once("exit", (code) => reject(new Error(`${bin} exited with ${code}:\n${log}`)));
    child[stream === "stderr" ? "stdout" : "stderr"].resume();
    child[stream].setEncoding("utf8");
    child[stream].on("data", (d) => {
      if (log.length < 65536) log += d;
      const m = re.exec(log);
      if (m) {
        clearTimeout(t);
        resolve({ child, m });
      }
    });
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function startBeuss() {
  let bin = process.env.BEUSS_SERVER || `${repo}target/release/beuss-server`;
  if (!existsSync(bin)) {
    console.error("# building beuss-server (release)");
    execFileSync("cargo", ["build", "--quiet", "--release", "--bin", "beuss-server"], { cwd: repo, stdio: "inherit" });
    bin = `${repo}target/release/beuss-server`;
  }
  const { m } = await start(bin, [], { BHOST: "127.0.0.1", BPORT: "0", BMAXMEMORY: "1G" }, "stderr", /listening on ([0-9.]+):(\d+)/);
  return { host: m[1], port: Number(m[2]) };
}

async function startRedis() {
  const port = await freePort();
  const bin = process.env.REDIS_SERVER || "redis-server";
  await start(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {}, "stdout", /Ready to accept connections/);
  return port;
}

async function timed(f) {
  const t0 = performance.now();
  await f();
  return N / ((performance.now() - t0) / 1000);
}

async function beussRound(c, q) {
  const put = await timed(async () => {
    for (let i = 0; i < N; i += WINDOW) {
      const ps = [];
      for (let j = 0; j < WINDOW && i + j < N; j++) ps.push(c.put(q, payload));
      await Promise.all(ps);
    }
  });
  let got = 0;
  const get = await timed(async () => {
    for (let i = 0; i < N; i += WINDOW) {
      const ps = [];
      for (let j = 0; j < WINDOW && i + j < N; j++) ps.push(c.get(q));
      for (const ms of await Promise.all(ps)) got += ms.length;
    }
  });
  if (got !== N) throw new Error(`beuss: got ${got} of ${N}`);
  return { put, get };
}

async function redisRound(r, key) {
  const put = await timed(async () => {
    for (let i = 0; i < N; i += WINDOW) {
      const p = r.pipeline();
      for (let j = 0; j < WINDOW && i + j < N; j++) p.lpush(key, payload);
      await p.exec();
    }
  });
  let got = 0;
  const get = await timed(async () => {
    for (let i = 0; i < N; i += WINDOW) {
      const p = r.pipeline();
      for (let j = 0; j < WINDOW && i + j < N; j++) p.rpopBuffer(key);
      for (const [err, v] of await p.exec()) if (!err && v) got++;
    }
  });
  if (got !== N) throw new Error(`redis: got ${got} of ${N}`);
  return { put, get };
}

async function consumeRound(c, q) {
  for (let i = 0; i < N; i += 1000) {
    const ps = [];
    for (let j = 0; j < 1000 && i + j < N; j++) ps.push(c.put(q, payload));
    await Promise.all(ps);
  }
  let handled = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  const cons = c.consume(q, { concurrency: 64, waitMs: 1000 });
  const t0 = performance.now();
  void cons.run(() => {
    if (++handled === N) done();
  });
  await finished;
  await cons.close();
  const rate = N / ((performance.now() - t0) / 1000);
  const left = (await c.stats(q)).queues.get(q)?.get("messages") ?? 0n;
  if (left !== 0n) throw new Error(`consumer left ${left} messages`);
  return rate;
}

function summary(impl, op, xs) {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  const f = (x) => Math.round(x);
  console.log(`client=js impl=${impl} op=${op} rounds=${s.length} median_msgs_per_s=${f(med)} min=${f(s[0])} max=${f(s[s.length - 1])} spread_pct=${((100 * (s[s.length - 1] - s[0])) / med).toFixed(1)}`);
  return med;
}

const b = await startBeuss();
const rport = await startRedis();
const c = await connect(b);
const r = new Redis({ host: "127.0.0.1", port: rport, lazyConnect: true, enableAutoPipelining: false });
await r.connect();
console.log(`# node ${process.version}, N=${N} messages of ${payload.length} B, window ${WINDOW}, ${ROUNDS} rounds; beuss ${c.server.server} at ${b.host}:${b.port}, redis at 127.0.0.1:${rport}`);

const res = { beuss: { put: [], get: [] }, ioredis: { put: [], get: [] }, consume: [] };
// One warm-up round each (JIT, socket buffers), not counted.
await beussRound(c, "bench-warm");
await redisRound(r, "bench-warm");
for (let i = 1; i <= ROUNDS; i++) {
  // Alternate which goes first, so neither always runs on a warmer machine.
  const order = i % 2 ? ["beuss", "ioredis"] : ["ioredis", "beuss"];
  for (const impl of order) {
    const x = impl === "beuss" ? await beussRound(c, `bench-${i}`) : await redisRound(r, `bench-${i}`);
    for (const op of ["put", "get"]) {
      res[impl][op].push(x[op]);
      console.log(`client=js impl=${impl} op=${op} round=${i} msgs_per_s=${Math.round(x[op])}`);
    }
  }
  const cr = await consumeRound(c, `bench-consume-${i}`);
  res.consume.push(cr);
  console.log(`client=js impl=beuss op=consume round=${i} msgs_per_s=${Math.round(cr)}`);
}
const m = {};
for (const impl of ["beuss", "ioredis"]) for (const op of ["put", "get"]) m[`${impl}.${op}`] = summary(impl, op, res[impl][op]);
summary("beuss", "consume", res.consume);
for (const op of ["put", "get"]) {
  console.log(`client=js op=${op} ratio_beuss_over_ioredis=${(m[`beuss.${op}`] / m[`ioredis.${op}`]).toFixed(2)}`);
}
await c.close();
r.disconnect();
stopAll();
