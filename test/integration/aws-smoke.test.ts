/**
 * `ftguard aws smoke` against `ftguard pipeline` (the same S3 API a deployment serves), both run as a user runs
 * them: the pipeline's policy trusts the smoke-test key (as the deployed one does through the config's smokeTest),
 * the smoke test commits the signed and the tampered example and waits for their status tags.
 * What it proves: exit 0 with PROMOTABLE and QUARANTINED when the pipeline works; exit 1 when a verdict is not the
 * expected one (a key the policy does not trust: the signed copy is QUARANTINED too); exit 2 when it cannot run
 * (a key that is no EC private key, a bucket that does not exist).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ftguard, REPO, waitForStderr } from "../helpers/cli";

const work = mkdtempSync(join(tmpdir(), "ftguard-aws-smoke-"));
const KEY = join(work, "smoke.key.pem");
const OTHER_KEY = join(work, "other.key.pem");
const S3RVER = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };

let pipeline: ChildProcess;
let endpoint = "";
let bucket = "";

beforeAll(async () => {
	// the way docs/deploy.md makes the smoke-test key
	execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", KEY]);
	const pub = execFileSync("openssl", ["ec", "-in", KEY, "-pubout"], {
		stdio: ["ignore", "pipe", "ignore"],
	}).toString();
	execFileSync("openssl", ["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", OTHER_KEY]);
	writeFileSync(join(work, "policy.json"), JSON.stringify({ signers: [{ kind: "public-key", pem: pub }] }));
	pipeline = spawn(
		process.execPath,
		[join(REPO, "bin/ftguard.mjs"), "pipeline", "--port", "0", "--policy", "policy.json"],
		{
			cwd: work,
			stdio: ["ignore", "ignore", "pipe"],
			env: { ...process.env, FTGUARD_DEBUG: "" },
		},
	);
	const m = await waitForStderr(
		pipeline,
		/S3 endpoint (http:\/\/127\.0\.0\.1:\d+).*upload to s3:\/\/([^/]+)\//,
		90_000,
	);
	endpoint = m[1] as string;
	bucket = m[2] as string;
}, 120_000);

afterAll(async () => {
	if (pipeline && pipeline.exitCode === null) {
		const done = new Promise((r) => pipeline.once("exit", r));
		pipeline.kill("SIGTERM");
		await done;
	}
}, 60_000);

const smoke = (...extra: string[]) =>
	ftguard(["aws", "smoke", "--endpoint", endpoint, "--bucket", bucket, "--interval", "0.5", ...extra], { env: S3RVER });

describe("ftguard aws smoke against ftguard pipeline", () => {
	it("the trusted smoke key: signed → PROMOTABLE, tampered → QUARANTINED, exit 0 (--json)", async () => {
		const r = await smoke("--key", KEY, "--timeout", "120", "--json");
		expect(r.code, r.stderr).toBe(0);
		const doc = r.json() as {
			ok: boolean;
			prefix: string;
			results: { name: string; marker: string; expected: string; status: string; source: string; ok: boolean }[];
		};
		expect(doc.ok).toBe(true);
		expect(doc.prefix).toMatch(/^ftguard-smoke\/\d{8}T\d{6}Z-[0-9a-f]{6}\/$/);
		expect(doc.results.map((x) => [x.name, x.status, x.source, x.ok])).toEqual([
			["signed", "PROMOTABLE", "tag", true],
			["tampered", "QUARANTINED", "tag", true],
		]);
		// committed the way a training job commits: the marker is model.sig under each directory
		expect(doc.results.map((x) => x.marker)).toEqual([
			`${doc.prefix}signed/model.sig`,
			`${doc.prefix}tampered/model.sig`,
		]);
	}, 180_000);

	it("text output: one line per copy and the outcome", async () => {
		const r = await smoke("--key", KEY, "--timeout", "120", "--prefix", "smoke-text/");
		expect(r.code, r.stderr).toBe(0);
		expect(r.stdout).toMatch(/^signed {4}PROMOTABLE {3}as expected .*smoke-text\/.*\/signed\/model\.sig$/m);
		expect(r.stdout).toMatch(/^tampered {2}QUARANTINED {2}as expected /m);
		expect(r.stdout.trim().split("\n").at(-1)).toBe("smoke test passed");
		expect(r.stderr).toMatch(/^ftguard aws smoke: committed s3:\/\//);
	}, 180_000);

	it("a key the pipeline does not trust: the signed copy is QUARANTINED too → exit 1", async () => {
		const r = await smoke("--key", OTHER_KEY, "--timeout", "120");
		expect(r.code, r.stderr).toBe(1);
		expect(r.stdout).toMatch(/^signed {4}QUARANTINED {2}EXPECTED PROMOTABLE /m);
		expect(r.stdout.trim().split("\n").at(-1)).toBe("smoke test FAILED");
	}, 180_000);

	it("cannot run → exit 2 with a stable code: no EC private key (KEY_INVALID), no such bucket (AWS_API_ERROR)", async () => {
		const bad = join(work, "bad.pem");
		writeFileSync(bad, "not a key\n");
		const k = await smoke("--key", bad);
		expect(k.code).toBe(2);
		expect(k.stderr).toMatch(/^ftguard: KEY_INVALID: --key .*bad\.pem: /);
		const b = await ftguard(
			["aws", "smoke", "--endpoint", endpoint, "--bucket", "no-such-bucket", "--key", KEY, "--json"],
			{ env: S3RVER },
		);
		expect(b.code).toBe(2);
		expect(b.json()).toMatchObject({ ok: false, error: { code: "AWS_API_ERROR" } });
		expect(b.stderr).toMatch(/S3 PutObject s3:\/\/no-such-bucket\/.* failed: NoSuchBucket/);
	}, 60_000);

	it("usage errors exit 2, never 1: a required flag missing, a timeout that is no number of seconds", async () => {
		const missing = await ftguard(["aws", "smoke", "--bucket", "b", "--key", KEY]);
		expect(missing.code).toBe(2);
		expect(missing.stderr).toMatch(/required option '--endpoint <url>' not specified/);
		const timeout = await ftguard([
			"aws",
			"smoke",
			"--endpoint",
			endpoint,
			"--bucket",
			"b",
			"--key",
			KEY,
			"--timeout",
			"soon",
		]);
		expect(timeout.code).toBe(2);
		expect(timeout.stderr).toMatch(/--timeout must be a number of seconds > 0/);
	}, 30_000);

	it("--help: the flags, the commit order and the exit codes", async () => {
		const r = await ftguard(["aws", "smoke", "--help"]);
		expect(r.code).toBe(0);
		for (const flag of [
			"--endpoint <url>",
			"--bucket <name>",
			"--key <file>",
			"--report-bucket <name>",
			"--timeout <s>",
			"--json",
		]) {
			expect(r.stdout).toContain(flag);
		}
		expect(r.stdout).toMatch(/model\.sig last/);
		expect(r.stdout).toMatch(/Exit codes: 0 PROMOTABLE and QUARANTINED as expected/);
	}, 30_000);
});
