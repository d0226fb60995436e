// The CommonJS build loads with require() through the package's "exports" map.
const { test } = require("node:test");
const assert = require("node:assert/strict");

test("require('beuss') gives the CommonJS build with the whole API", () => {
  const beuss = require("beuss");
  assert.equal(typeof beuss.connect, "function");
  assert.equal(typeof beuss.Client, "function");
  assert.ok(require.resolve("beuss").includes(require("node:path").join("dist", "cjs")));
  assert.equal(beuss.codec.encodePing().toString("hex"), "000000020200");
  assert.ok(new beuss.FullError(7, false, "x") instanceof beuss.ServerError);
});
