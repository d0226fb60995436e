// Authentication and the Unix socket (protocol.md 16) against the real server: a token
// file with a read-write and a read-only token, the errors without and with a wrong
// token, reconnects that authenticate again, and connecting over a Unix socket,
// directly and through the environment (BUNIX, BAUTHFILE).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as beuss from "beuss";
import { startServer, uniq } from "./helpers/server.mjs";

const RW = "js-rw-token-0123456789abcdef";
const RO = "js-ro-token-fedcba9876543210";

function scratch() {
  const dir = mkdtempSync(join(tmpdir(), "beuss-js-"));
  const tokens = join(dir, "tokens");
  writeFileSync(tokens, `# tokens\n${RW}\n${RO} ro\n`, { mode: 0o600 });
  return { dir, tokens, socket: join(dir, "beuss.sock"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("no token, a wrong token, the right token, a read-only token", async () => {
  const s = scratch();
  const srv = await startServer({ BAUTHFILE: s.tokens });
  try {
    const none = await srv.connect();
    assert.ok(none.server.has(beuss.Feature.AUTH_REQUIRED));
    await none.ping(); // allowed before AUTH
    await assert.rejects(none.put(uniq(), "x"), beuss.AuthRequiredError);
    none.destroy();
    await assert.rejects(srv.connect({ token: "not-a-token-of-this-server" }), beuss.AuthFailedError);
    const rw = await srv.connect({ token: RW });
    assert.equal(rw.readOnly, false);
    const q = uniq();
    await rw.put(q, "hello");
    assert.deepEqual((await rw.get(q)).map((m) => m.text()), ["hello"]);
    const ro = await srv.connect({ tokenFile: s.tokens }); // its first token: read-write
    assert.equal(ro.readOnly, false);
    assert.equal(await ro.auth(RO), true);
    await assert.rejects(ro.put(q, "x"), beuss.ForbiddenError);
    await ro.ping(); // not fatal: the connection goes on
    await ro.reconnect(); // authenticates again, with the token it last gave
    assert.equal(ro.readOnly, true);
    await assert.rejects(ro.put(q, "x"), beuss.ForbiddenError);
    await ro.close();
    await rw.close();
  } finally {
    await srv.stop();
    s.done();
  }
});

test("a Unix socket, given or from BUNIX and BAUTHFILE", async () => {
  const s = scratch();
  const srv = await startServer({ BUNIX: s.socket, BPORT: "off", BAUTHFILE: s.tokens });
  const saved = { BUNIX: process.env.BUNIX, BAUTHFILE: process.env.BAUTHFILE, BPORT: process.env.BPORT };
  try {
    const c = await beuss.connect({ path: s.socket, token: RW });
    const q = uniq();
    await c.put(q, "over the socket");
    await c.close();
    process.env.BUNIX = s.socket;
    process.env.BAUTHFILE = s.tokens;
    process.env.BPORT = "1"; // BUNIX wins
    const env = await beuss.connect();
    assert.deepEqual((await env.get(q)).map((m) => m.text()), ["over the socket"]);
    await env.close();
    delete process.env.BAUTHFILE;
    const byAddress = await beuss.connect(`unix:${s.socket}`);
    await assert.rejects(byAddress.get(q), beuss.AuthRequiredError);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await srv.stop();
    s.done();
  }
});
