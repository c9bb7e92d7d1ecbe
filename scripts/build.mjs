// Bundles the CLI into dist/ so that `ftguard` starts without a TypeScript loader.
// Code splitting keeps each command's implementation in its own chunk, loaded on
// use: `ftguard files` never parses the Sigstore stack, `ftguard verify` never the
// format scanners. Runs on `npm ci` / `npm install` (prepare) and before the tests;
// bin/ftguard.mjs falls back to the sources when dist is stale.
//
// The `files` command's engine (lib/cli/files-engine.ts: the scanners) is also bundled
// on its own as CommonJS, next to the output that holds lib/cli/files.ts, which runs it
// through vm.Script with a V8 code cache (lib/cli/code-cache.ts): Node 20 caches no
// compiled code for ES modules, and compiling the scanners is a third of a first scan.
import { rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";

const FILES_ENGINE = "files-engine.cjs";

rmSync("dist", { recursive: true, force: true });
const main = await build({
	entryPoints: { ftguard: "bin/ftguard.ts" },
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
	metafile: true,
	define: { FTGUARD_FILES_ENGINE: JSON.stringify(`./${FILES_ENGINE}`) },
	// a native addon: loaded from node_modules at run time, never bundled
	external: ["onnxruntime-node"],
	// Bundled CommonJS dependencies call require(); give each ESM output one.
	banner: {
		js: "import { createRequire as __ftguardRequire } from 'node:module'; const require = __ftguardRequire(import.meta.url);",
	},
});

// The engine goes beside whichever output holds lib/cli/files.ts (it resolves the
// engine against its own import.meta.url).
const holder = Object.entries(main.metafile.outputs).find(
	([out, o]) =>
		out.endsWith(".mjs") && Object.keys(o.inputs).some((i) => i.replaceAll("\\", "/") === "lib/cli/files.ts"),
)?.[0];
if (holder === undefined) throw new Error("build: no output holds lib/cli/files.ts");
await build({
	entryPoints: ["lib/cli/files-engine.ts"],
	outfile: join(relative(".", dirname(holder)), FILES_ENGINE),
	bundle: true,
	platform: "node",
	format: "cjs",
	target: "node20",
	sourcemap: "linked",
	logLevel: "warning",
	external: ["onnxruntime-node"],
});
