// Bundles src/main.ts and its dependencies (livekit-client, from package-lock.json) into
// static/build/app.js, which the orchestrator serves at /web/build/app.js. The output is
// built on each machine and never committed.
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["src/main.ts"],
  outfile: "static/build/app.js",
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "info",
});
