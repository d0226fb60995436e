// npm runs "prepare" when this folder is installed (`npm install ./clients/js`) and
// after `npm ci` here. A folder install links the package without its dev
// dependencies, so install them first when tsc is missing, then build dist/.
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("..", import.meta.url));
const run = (cmd) => execSync(cmd, { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
if (!existsSync(`${dir}node_modules/typescript/bin/tsc`)) {
  run("npm ci --ignore-scripts --no-audit --no-fund --loglevel=error");
}
run("npm run --silent build");
