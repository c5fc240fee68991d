// Builds the dashboard's page (src/dashboard) into dist/dashboard: one JavaScript bundle
// (Preact, uPlot and the page, minified), one stylesheet and the HTML. Run by `npm run build`
// after tsc, so `npm ci` (whose `prepare` builds) leaves a node ready to serve it; the user
// builds nothing. The node serves exactly the files this writes (src/runtime/server/dashboard-http.ts).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "src", "dashboard");
const out = join(root, "dist", "dashboard");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(source, "main.tsx")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: join(out, "app.js"),
  legalComments: "eof",
  logLevel: "warning",
});
const uplotCss = readFileSync(join(root, "node_modules", "uplot", "dist", "uPlot.min.css"), "utf8");
writeFileSync(join(out, "app.css"), `${uplotCss}\n${readFileSync(join(source, "app.css"), "utf8")}`);
copyFileSync(join(source, "index.html"), join(out, "index.html"));
