#!/usr/bin/env node
// The published entry point. It runs the bundle in dist/ (built by `npm ci` /
// `npm run build`) when that bundle is newer than every source file, and the
// TypeScript sources through tsx otherwise — so an edited checkout never runs
// stale code, and an installed one starts fast.
import { existsSync, readdirSync, statSync } from "node:fs";
import module from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PIPELINE_NODE_FLAGS, rerunWith, startedWith } from "./node-flags.mjs";

// Node ≥ 22.1 keeps V8's compiled code on disk between runs, so a fresh process does not
// compile ftguard again before its first scan (a no-op on Node 20, which lacks the API).
module.enableCompileCache?.();

// ftguard supports Node ≥ 20.17 (package.json engines); the AWS SDK versions the lockfile pins run on it. The SDK's
// notice that its releases after January 2027 need Node 22 concerns upgrading the SDK, not running ftguard: it is
// not printed on every command (set the variable to "false" to see it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// `ftguard pipeline` needs V8 flags from the start of the process (node-flags.mjs says why): run it again with them.
const command = process.argv.slice(2).find((a) => !a.startsWith("-"));
const rerun = command === "pipeline" && !startedWith(PIPELINE_NODE_FLAGS);

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = join(root, "dist", "ftguard.mjs");

function newestSource(dir) {
	let newest = 0;
	for (const entry of readdirSync(dir, { withFileTypes: true })) {
		const p = join(dir, entry.name);
		if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
		else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
	}
	return newest;
}

// (not asked by the launcher of a re-run: its child asks)
const fresh = () =>
	existsSync(bundle) &&
	statSync(bundle).mtimeMs >= Math.max(newestSource(join(root, "bin")), newestSource(join(root, "lib")));

if (rerun) {
	rerunWith(PIPELINE_NODE_FLAGS);
} else if (fresh()) {
	await import(bundle);
} else {
	const { register } = await import("tsx/esm/api");
	register();
	await import("./ftguard.ts");
}
