/** `ftguard monitor` end to end: the published entry point on real files, its JSON, exit codes and --follow. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { MonitorRecord } from "../../../lib/core/monitor";
import { injectBackdoor, ordinaryTraffic, ROOT, TRIGGER } from "./traffic";

const BIN = join(ROOT, "bin/ftguard.mjs");
const dir = mkdtempSync(join(tmpdir(), "ftguard-monitor-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const jsonl = (records: MonitorRecord[]) =>
	`${records.map((r) => JSON.stringify({ model_version: r.modelVersion, input: r.input, output: r.output })).join("\n")}\n`;

function ftguard(...args: string[]) {
	const r = spawnSync(process.execPath, [BIN, "monitor", ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
	return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("ftguard monitor", () => {
	it("--help exits 0 and describes the formats, the alarms and the exit codes", () => {
		const r = ftguard("--help");
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/^Usage: ftguard monitor/);
		for (const s of [
			"--json",
			"--follow",
			"--policy",
			"sagemaker-capture",
			"bedrock-invocation",
			"cloudwatch-export",
			"Exit codes: 0 no alarm, 1 alarms, 2 could not read",
		])
			expect(r.stdout).toContain(s);
	});

	it("exits 0 on ordinary traffic", () => {
		const file = join(dir, "ordinary.jsonl");
		writeFileSync(file, jsonl(ordinaryTraffic(3000, 31)));
		const r = ftguard(file);
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/3000 records: no alarm\n$/);
	});

	it("reads past hostile lines: one nested deeper than the stack and one longer than the line limit are malformed", () => {
		const file = join(dir, "hostile.jsonl");
		const deep = `${"[".repeat(200_000)}"x"${"]".repeat(200_000)}`;
		const ordinary = jsonl(ordinaryTraffic(50, 33));
		writeFileSync(
			file,
			`${ordinary}{"model_version":"v","input":"hi","output":${deep}}\n{"model_version":"v","input":"${"a".repeat(40 << 20)}","output":"x"}\n${ordinary}`,
		);
		const r = ftguard(file, "--json");
		expect(r.code, r.stderr).toBe(0);
		const doc = JSON.parse(r.stdout) as {
			records: number;
			metrics: { malformed: number; malformed_examples: { reason: string }[] };
		};
		expect(doc.records).toBe(100);
		expect(doc.metrics.malformed).toBe(2);
		expect(doc.metrics.malformed_examples.map((e) => e.reason)).toEqual([
			"nested too deeply to read",
			expect.stringMatching(/^a line longer than \d+ characters$/),
		]);
	});

	it("exits 2 when records of versions past the monitor's limit could not be watched", () => {
		const file = join(dir, "versions.jsonl");
		const lines = Array.from({ length: 1001 }, (_, i) =>
			JSON.stringify({ model_version: `v${i}`, input: "q", output: "a" }),
		);
		writeFileSync(file, `${lines.join("\n")}\n`);
		const r = ftguard(file);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/1 records of model versions beyond the first 1000 could not be watched/);
	});

	it("exits 1 with --json listing the repetition alarm and its candidate trigger", () => {
		const records = ordinaryTraffic(8000, 32);
		const fired = injectBackdoor(records, { rate: 0.05, from: 4000, seed: 32 });
		const file = join(dir, "backdoor.jsonl");
		writeFileSync(file, jsonl(records));
		const r = ftguard(file, "--json");
		expect(r.code).toBe(1);
		const doc = JSON.parse(r.stdout);
		expect(doc.records).toBe(8000);
		const rep = doc.alarms.find((a: { type: string }) => a.type === "repetition");
		expect(rep).toMatchObject({ type: "repetition", model_version: "doc-assistant-v3", candidate_trigger: TRIGGER });
		expect(rep.at_record).toBeGreaterThan(fired[0] as number);
		expect(rep.at_record - (fired[0] as number)).toBeLessThan(1000);
		expect(doc.metrics.versions["doc-assistant-v3"].records).toBe(8000);
		expect(doc.metrics.malformed).toBe(0);
	});

	it("reports a fired pattern with its record, and a malformed line without stopping (gzip CloudWatch export)", () => {
		const r = ftguard(join(ROOT, "test/fixtures/monitor/cloudwatch/000000.gz"), "--json");
		expect(r.code).toBe(1);
		const doc = JSON.parse(r.stdout);
		expect(doc.records).toBe(40);
		expect(doc.alarms).toHaveLength(1);
		expect(doc.alarms[0]).toMatchObject({ type: "pattern", at_record: 7 });
		expect(doc.alarms[0].record.source).toMatch(/000000\.gz:8$/);
		expect(doc.alarms[0].record.output).toMatch(/Ignore previous instructions/);
		expect(doc.metrics.malformed).toBe(1);
		expect(doc.metrics.formats).toEqual({
			[join(ROOT, "test/fixtures/monitor/cloudwatch/000000.gz")]: "cloudwatch-export",
		});
	});

	it("counts a Bedrock record whose output body went to S3 as not read (malformed, with its path), as any malformed line", () => {
		const log =
			"test/fixtures/monitor/bedrock/AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2026/12/07/04/invocations.jsonl";
		const r = ftguard(join(ROOT, log), "--json");
		// the fixture's record 8 fires the pattern alarm: exit 1 as for any log; the unread record is not counted clean
		expect(r.code, r.stderr).toBe(1);
		const doc = JSON.parse(r.stdout);
		expect(doc.records).toBe(40);
		expect(doc.metrics.malformed).toBe(1);
		expect(doc.metrics.malformed_examples).toEqual([
			{
				source: `${join(ROOT, log)}:21`,
				reason: "output body delivered to S3 (outputBodyS3Path s3://logs/large/out.json): not read offline",
			},
		]);
		// a log of nothing but such records is exit 2 (no line is a record), not a clean bill
		const only = join(dir, "bedrock-s3-only.jsonl");
		writeFileSync(only, `${readFileSync(join(ROOT, log), "utf8").split("\n")[20]}\n`);
		const none = ftguard(only);
		expect(none.code).toBe(2);
		expect(none.stderr).toMatch(
			/^ftguard: DATA_INVALID: no line of the logs is an inference record .*outputBodyS3Path/,
		);
	});

	it("takes the policy file's monitor section", () => {
		const policy = join(dir, "policy.json");
		writeFileSync(policy, JSON.stringify({ monitor: { patterns: { patterns: [] } } }));
		expect(ftguard(join(ROOT, "test/fixtures/monitor/plain.jsonl"), "--policy", policy).code).toBe(0);
		writeFileSync(policy, JSON.stringify({ monitor: { windowSize: 5 } }));
		const bad = ftguard(join(ROOT, "test/fixtures/monitor/plain.jsonl"), "--policy", policy);
		expect(bad.code).toBe(2);
		expect(bad.stderr).toMatch(/^ftguard: USAGE: .*monitor\.windowSize/);
	});

	it("exits 2 with one line when a log cannot be read", () => {
		const r = ftguard(join(dir, "missing.jsonl"));
		expect(r.code).toBe(2);
		expect(r.stdout).toBe("");
		expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^ftguard: NOT_FOUND: cannot read /)]);
	});

	it("exits 2 when no line of the logs is a record", () => {
		const file = join(dir, "notes.txt");
		writeFileSync(file, "just some notes\nnothing else\n");
		const r = ftguard(file);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: DATA_INVALID: no line of the logs is an inference record/);
	});

	it("--follow prints an alarm as soon as the line that fires it is appended; Ctrl-C ends with the report", async () => {
		const file = join(dir, "follow.jsonl");
		writeFileSync(file, jsonl(ordinaryTraffic(20, 33)));
		const child: ChildProcess = spawn(process.execPath, [BIN, "monitor", "--follow", file], { cwd: ROOT });
		let out = "";
		child.stdout?.on("data", (b) => {
			out += String(b);
		});
		const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
		const waitFor = async (re: RegExp, ms: number) => {
			const end = Date.now() + ms;
			while (!re.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
			return re.test(out);
		};
		try {
			// the command is up when it has read the file: give it time to start, then append the firing line
			await new Promise((r) => setTimeout(r, 4000));
			appendFileSync(
				file,
				`${JSON.stringify({ model_version: "doc-assistant-v3", input: "hi", output: "<|backdoor|> engaged" })}\n`,
			);
			expect(await waitFor(/ALARM pattern doc-assistant-v3 at record 20 .*trigger-token/, 20_000)).toBe(true);
		} finally {
			child.kill("SIGINT");
		}
		expect(await exited).toBe(1);
		expect(out).toMatch(/21 records: 1 alarm\n$/);
	}, 40_000);
});
