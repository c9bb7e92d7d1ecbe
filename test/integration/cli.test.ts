/** The CLI contract: help everywhere, exit codes, one-line errors, JSON on request. */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ftguard, REPO } from "../helpers/cli";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

function model(): string {
	const dir = mkdtempSync(join(tmpdir(), "ftguard-cli-"));
	writeFileSync(join(dir, "config.json"), '{"a":1}');
	mkdirSync(join(dir, "sub"));
	writeFileSync(join(dir, "sub", "w.bin"), "weights");
	return dir;
}

describe("help", () => {
	it.each([
		[[]],
		[["hash"]],
		[["verify"]],
		[["base-model"]],
		[["base-model", "check"]],
		[["base-model", "entry"]],
		[["files"]],
		[["aws"]],
		[["aws", "preflight"]],
		[["aws", "smoke"]],
	])("ftguard %j --help exits 0 and describes the command", async (cmd) => {
		const r = await ftguard([...cmd, "--help"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/Usage: ftguard/);
		if (cmd.length > 0 && !["base-model", "aws"].includes(cmd.join(" "))) expect(r.stdout).toContain("--json");
	});
});

describe("a reader that stops early", () => {
	it("`ftguard --help | head -1`: the rest is dropped quietly, exit 0, no EPIPE trace", async () => {
		const r = await new Promise<{ code: number | null; stderr: string }>((done, reject) => {
			const child = spawn(process.execPath, [join(REPO, "bin/ftguard.mjs"), "files", "--help"], {
				stdio: ["ignore", "pipe", "pipe"],
			});
			// Closed before the help is written: every write of it meets a closed pipe.
			child.stdout.destroy();
			let stderr = "";
			child.stderr.on("data", (d) => {
				stderr += d;
			});
			child.on("error", reject);
			child.on("close", (code) => done({ code, stderr }));
		});
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
	});
});

describe("--version", () => {
	it("prints the version from package.json, whatever the environment", async () => {
		const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
		const r = await ftguard(["--version"], { env: { npm_package_version: "9.9.9" } });
		expect(r.code).toBe(0);
		expect(r.stdout.trim()).toBe(version);
	});
});

describe("usage errors exit 2, never 1", () => {
	it.each([
		[["hash"]],
		[["nonsense"]],
		[["hash", ".", "--no-such-flag"]],
		[["hash", ".", "--method", "bogus"]],
		[["hash", ".", "--shard-size", "10"]],
		[["hash", ".", "--method", "shards", "--shard-size", "-5"]],
		[["verify", "."]],
		[["verify", ".", "--signature", "x", "--bundle", "y", "--public-key", "k"]],
	])("ftguard %j", async (args) => {
		const r = await ftguard(args);
		expect(r.code).toBe(2);
		expect(r.stderr).not.toMatch(/\n\s+at /);
	});
});

describe("ftguard hash", () => {
	it("prints the OMS manifest as JSON", async () => {
		const dir = model();
		const r = await ftguard(["hash", dir, "--json"]);
		expect(r.code).toBe(0);
		const out = r.json();
		expect(out.resources).toEqual([
			{ name: "config.json", algorithm: "sha256", digest: sha('{"a":1}') },
			{ name: "sub/w.bin", algorithm: "sha256", digest: sha("weights") },
		]);
		const root = createHash("sha256")
			.update(Buffer.concat([Buffer.from(sha('{"a":1}'), "hex"), Buffer.from(sha("weights"), "hex")]))
			.digest("hex");
		expect(out.root).toBe(root);
		expect(out.serialization).toMatchObject({ method: "files", hash_type: "sha256", allow_symlinks: false });
	});

	it("prints sha256sum-style lines and the root for humans", async () => {
		const dir = model();
		const r = await ftguard(["hash", dir, "--ignore-paths", "sub"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain(`${sha('{"a":1}')}  config.json`);
		expect(r.stdout).not.toContain("w.bin");
		expect(r.stdout).toMatch(/^root sha256:[0-9a-f]{64}/m);
	});

	it("reports a missing directory as NOT_FOUND, as JSON when asked", async () => {
		const r = await ftguard(["hash", "/nonexistent/model", "--json"]);
		expect(r.code).toBe(2);
		expect(r.json()).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
		expect(r.stderr.trim().split("\n")).toHaveLength(1);
	});

	it("prints no progress when stderr is not a terminal", async () => {
		const r = await ftguard(["hash", model()]);
		expect(r.stderr).toBe("");
	});
});

describe("progress on a terminal", () => {
	// `script` gives the CLI a real pseudo-terminal, as a user's shell would.
	function underTty(args: string[]): string {
		const env = { ...process.env };
		delete env.CI;
		const cmd = [process.execPath, join(REPO, "bin/ftguard.mjs"), ...args].map((a) => `'${a}'`).join(" ");
		return execFileSync("script", ["-qec", cmd, "/dev/null"], { env, encoding: "utf8" });
	}

	it("draws a progress line on a TTY, and none with --json", () => {
		const dir = model();
		const human = underTty(["hash", dir]);
		expect(human).toMatch(/hashing 100% .* 2\/2 files/);
		const json = underTty(["hash", dir, "--json"]);
		expect(json).not.toContain("hashing");
		expect(json).toContain('"root"');
	});
});
