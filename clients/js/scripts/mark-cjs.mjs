// The package is "type": "module", so .js under dist/cjs would be read as ESM:
// a package.json marker there makes Node read that folder as CommonJS.
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
