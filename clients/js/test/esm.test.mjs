// The ES module build loads with import through the package's "exports" map.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

test("import 'beuss' gives the ESM build with the whole API", async () => {
  const beuss = await import("beuss");
  assert.equal(typeof beuss.connect, "function");
  assert.ok(fileURLToPath(import.meta.resolve("beuss")).includes("dist/esm"));
  assert.equal(beuss.codec.encodeQuit().toString("hex"), "000000020300");
});
