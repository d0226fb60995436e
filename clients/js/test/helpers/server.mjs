// Test fixture: starts the real beuss-server on a free loopback port (BPORT=0) and
// reads the address from its "listening on" line; never sleeps to synchronise.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
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
