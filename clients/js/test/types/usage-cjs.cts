// The CommonJS declarations (dist/cjs/*.d.ts) resolve for require() too.
import beuss = require("beuss");

export async function usageCjs(): Promise<bigint | undefined> {
  const c: beuss.Client = await beuss.connect("127.0.0.1:6552");
  const r = await c.put("jobs", "x");
  await c.close();
  return r.id;
}
