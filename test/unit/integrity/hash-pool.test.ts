/**
 * The worker's file read is a TypeScript function shipped to the worker as its
 * source text. How that text looks depends on who compiled it (tsx keeps names
 * with a helper, esbuild bundles and minifies), so it is run here the ways
 * ftguard runs: under tsx (the CLI from a checkout), bundled as scripts/build.mjs
 * bundles the CLI, and minified as the Lambda handlers are bundled. Each must
 * hash, and refuse what changed since the walk, exactly as the calling thread does.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";

const scratch = mkdtempSync(join(tmpdir(), "ftguard-hash-pool-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const data = randomBytes(3 << 20);
writeFileSync(join(scratch, "a.bin"), data);
symlinkSync(join(scratch, "a.bin"), join(scratch, "link"));
mkdirSync(join(scratch, "dir"));

const pool = resolve(process.cwd(), "lib/core/integrity/hash-pool.ts");
const script = join(scratch, "run.mts");
// One task per outcome: a digest, a symlink swapped in, a file whose size
// changed, a directory swapped in. Each on the workers and on the calling thread.
writeFileSync(
	script,
	[
		`import { statSync } from "node:fs";`,
		`import { join } from "node:path";`,
		`import { hashTasks } from ${JSON.stringify(pool)};`,
		`const dir = ${JSON.stringify(scratch)};`,
		`const st = statSync(join(dir, "a.bin"), { bigint: true });`,
		"const base = { start: 0, end: Number(st.size), size: Number(st.size), dev: st.dev, ino: st.ino, toEof: true };",
		"const tasks = [",
		`	{ ...base, path: join(dir, "a.bin"), name: "a.bin" },`,
		`	{ ...base, path: join(dir, "link"), name: "link" },`,
		`	{ ...base, path: join(dir, "a.bin"), name: "a.bin", size: base.size + 1 },`,
		`	{ ...base, path: join(dir, "dir"), name: "dir" },`,
		"];",
		"const out = {};",
		"for (const [mode, inlineMaxBytes] of [['worker', 0], ['inline', 1 << 30]]) {",
		"	out[mode] = [];",
		"	for (const task of tasks) {",
		"		const opts = { concurrency: 2, chunkSize: 1 << 16, inlineMaxBytes };",
		"		out[mode].push(await hashTasks([task], opts).then(([d]) => d, (e) => e.code));",
		"	}",
		"}",
		"console.log(JSON.stringify(out));",
	].join("\n"),
);

const expected = [createHash("sha256").update(data).digest("hex"), "SYMLINK_REFUSED", "IO_ERROR", "SPECIAL_FILE"];

function run(args: string[]): unknown {
	const out = execFileSync(process.execPath, args, { cwd: process.cwd(), timeout: 30_000, encoding: "utf8" });
	return JSON.parse(out.trim().split("\n").pop() as string);
}

async function bundled(name: string, options: { minify: boolean; target: string }): Promise<string> {
	const outfile = join(scratch, `${name}.mjs`);
	await build({
		entryPoints: [script],
		outfile,
		bundle: true,
		platform: "node",
		format: "esm",
		logLevel: "silent",
		...options,
	});
	return outfile;
}

describe("the worker's read, as each build ships it", () => {
	it("under tsx", () => {
		expect(run(["--import", "tsx", script])).toEqual({ worker: expected, inline: expected });
	});

	it("from an esbuild bundle, as scripts/build.mjs builds the CLI", async () => {
		const out = await bundled("cli", { minify: false, target: "node20" });
		expect(run([out])).toEqual({ worker: expected, inline: expected });
	});

	it("from a minified esbuild bundle, as the Lambda handlers are built", async () => {
		const out = await bundled("lambda", { minify: true, target: "node22" });
		expect(run([out])).toEqual({ worker: expected, inline: expected });
	});
});
