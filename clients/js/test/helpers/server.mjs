// Test fixture: starts the real beuss-server on a free loopback port (BPORT=0) and
// reads the address from its "listening on" line; never sleeps to synchronise. Also a
// scripted peer (fakeServer) for the checks a real server cannot provoke.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import * as net from "node:net";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { before, after } from "node:test";
import { connect } from "beuss";

/** The server binary: $BEUSS_SERVER, else <repo>/target/debug/beuss-server. */
export function serverPath() {
  return process.env.BEUSS_SERVER || fileURLToPath(new URL("../../../../target/debug/beuss-server", import.meta.url));
}

/** Starts a server with extra B* variables; resolves { host, port, connect, stop, child }. */
export async function startServer(env = {}) {
  const bin = serverPath();
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin}: build it or set BEUSS_SERVER`);
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (/^B[A-Z]+$/.test(k)) delete base[k];
  const child = spawn(bin, [], { env: { ...base, BHOST: "127.0.0.1", BPORT: "0", ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const addr = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not say "listening on" within 10 s:\n${log}`)), 10_000);
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`server exited with ${code}:\n${log}`));
    });
    child.stderr.setEncoding("utf8");
    // Keep draining stderr for the server's whole life, so it never blocks on a full pipe.
    child.stderr.on("data", (d) => {
      if (log.length < 65536) log += d;
      // BPORT=off: only a Unix socket, no TCP address.
      const m = /listening on (?:([0-9.]+):(\d+)|unix:)/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve(m[1] !== undefined ? { host: m[1], port: Number(m[2]) } : {});
      }
    });
  });
  return {
    ...addr,
    child,
    log: () => log,
    connect: (opts = {}) => connect({ ...addr, ...opts }),
    async stop(signal = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill(signal);
      await exited;
    },
  };
}

/** A queue name unique within the run, so tests sharing a server never meet. */
let n = 0;
export function uniq(prefix = "q") {
  return `${prefix}-${process.pid}-${++n}`;
}

/**
 * One server and one client for a whole test file: started before its first test and
 * ended after its last; `use(server, client)` receives them once they are up.
 */
export function serverForFile(use, env = {}) {
  let srv;
  let c;
  before(async () => {
    srv = await startServer(env);
    c = await srv.connect();
    use(srv, c);
  });
  after(async () => {
    await c?.close();
    await srv?.stop();
  });
}

/**
 * A scripted peer: HELLO of `version` (default 6) with `features`, then
 * `answer(opcode, frame)` for every other request (a PONG when it gives nothing).
 * Resolves { port, seen, close }; `seen` lists the opcodes of the frames received.
 */
export async function fakeServer(features, answer = () => undefined, { version = 6 } = {}) {
  const name = Buffer.from(`fake ${version}`);
  const hello = Buffer.alloc(4 + 1 + 2 + 4 + 1 + name.length + 4 + 4 + 4 + 4 + 2);
  let o = hello.writeUInt32BE(hello.length - 4, 0);
  o = hello.writeUInt8(0x02, o);
  o = hello.writeUInt16BE(version, o);
  o = hello.writeUInt32BE(1 << 20, o);
  o = hello.writeUInt8(name.length, o);
  o += name.copy(hello, o);
  o = hello.writeUInt32BE(features, o);
  o = hello.writeUInt32BE(30000, o);
  o = hello.writeUInt32BE(43200000, o);
  o = hello.writeUInt32BE(2592000000, o);
  hello.writeUInt16BE(20, o);
  const seen = [];
  const fake = net.createServer((s) => {
    s.on("error", () => {});
    s.on("data", (d) => {
      for (let i = 0; i + 6 <= d.length; i += 4 + d.readUInt32BE(i)) {
        const f = d.subarray(i, i + 4 + d.readUInt32BE(i));
        seen.push(f[4]);
        s.write(f[4] === 0x01 ? hello : (answer(f[4], f) ?? Buffer.from("0000000101", "hex")));
      }
    });
  });
  await new Promise((r) => fake.listen(0, "127.0.0.1", r));
  return { port: fake.address().port, seen, close: () => fake.close() };
}

/**
 * Runs `body(open)` against `fake` (a fakeServer), where `open()` connects one more
 * client to it; afterwards, also when a check failed, destroys every client so opened
 * (an open one would keep the test process alive) and closes `fake`.
 */
export async function withFakeClients(fake, body) {
  const clients = [];
  const open = async () => {
    const f = await connect({ host: "127.0.0.1", port: fake.port });
    clients.push(f);
    return f;
  };
  try {
    await body(open);
  } finally {
    for (const f of clients) f.destroy();
    fake.close();
  }
}

/** The error `promise` rejects with; fails the test, naming `what`, if it resolves instead. */
export function rejection(promise, what) {
  return promise.then(
    (r) => assert.fail(`${what} was accepted: ${JSON.stringify(r, (_, v) => (typeof v === "bigint" ? String(v) : v))}`),
    (err) => err,
  );
}
