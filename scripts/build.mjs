// Bundles the CLI into dist/ so that `ftguard` starts without a TypeScript loader.
// Code splitting keeps each command's implementation in its own chunk, loaded on
// use: `ftguard files` never parses the Sigstore stack, `ftguard verify` never the
// format scanners. Runs on `npm ci` / `npm install` (prepare) and before the tests;
// bin/ftguard.mjs falls back to the sources when dist is stale.
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true });
await build({
	// the local object server runs in a worker thread: its own entry (lib/local/object-server.ts)
	entryPoints: { ftguard: "bin/ftguard.ts", "object-server-worker": "lib/local/object-server-worker.ts" },
	outdir: "dist",
	outExtension: { ".js": ".mjs" },
	chunkNames: "chunks/[name]-[hash]",
	bundle: true,
	splitting: true,
	platform: "node",
	format: "esm",
	target: "node20",
	sourcemap: "linked",
	logLevel: "warning",
	// a native addon: loaded from node_modules at run time, never bundled
	external: ["onnxruntime-node"],
	// Bundled CommonJS dependencies call require(); give each ESM output one.
	banner: {
		js: "import { createRequire as __ftguardRequire } from 'node:module'; const require = __ftguardRequire(import.meta.url);",
	},
});
