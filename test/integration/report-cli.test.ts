/** `ftguard report` as a user runs it: each input form, what the page holds, and every way to fail (exit 2, one line). */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERDICT_RECORD_SCHEMA } from "../../lib/core/pipeline/record";
import { ftguard, quickBackdoorScan, REPO } from "../helpers/cli";

const D8 = join(REPO, "test/fixtures/backdoor/digits8");
const tmp = mkdtempSync(join(tmpdir(), "ftguard-report-cli-"));
const scan = join(tmp, "scan");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
	const r = await quickBackdoorScan(scan);
	expect(r.code).toBe(1);
}, 60_000);

const images = (html: string) => html.match(/<img src="data:image\/png;base64,/g)?.length ?? 0;

describe("ftguard report", () => {
	it("writes the page of a backdoor scan's --out directory, with its trigger images; --json says what it wrote", async () => {
		const out = join(tmp, "dir.html");
		const r = await ftguard(["report", scan, "-o", out, "--json"]);
		expect(r.code).toBe(0);
		expect(r.json()).toMatchObject({ ok: true, output: out, kind: "backdoor-image", verdict: "SUSPECT (class 5)" });
		const html = readFileSync(out, "utf8");
		expect((r.json() as { bytes: number }).bytes).toBe(Buffer.byteLength(html));
		expect(html).toContain("Neural Cleanse");
		expect(images(html)).toBe(20);
		// the report.json itself: the images beside it are found the same way
		const r2 = await ftguard(["report", join(scan, "report.json"), "-o", join(tmp, "file.html")]);
		expect(r2.code).toBe(0);
		expect(r2.stdout).toMatch(/^wrote .*file\.html \(backdoor-image: SUSPECT \(class 5\); [\d.]+ KiB\)\n$/);
		expect(images(readFileSync(join(tmp, "file.html"), "utf8"))).toBe(20);
	});

	it("a downloaded scan folder: the verdict record with files.json and backdoor/<i>/ beside it", async () => {
		const dir = join(tmp, "scans/ftg-1");
		mkdirSync(join(dir, "backdoor"), { recursive: true });
		cpSync(scan, join(dir, "backdoor/0"), { recursive: true });
		writeFileSync(
			join(dir, "verdict.json"),
			JSON.stringify({
				schema: VERDICT_RECORD_SCHEMA,
				scanId: "ftg-1",
				bucket: "checkpoints",
				artefact: "jobs/j1/model.onnx",
				marker: { key: "jobs/j1/model.onnx.sigstore.json" },
				status: "QUARANTINED",
				reasons: ["backdoor: suspect jobs/j1/model.onnx (class 5: …)"],
				objects: [],
				stages: {
					files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://reports/scans/ftg-1/files.json", reasons: [] },
					backdoor: { required: true, results: [{ index: 0, modelKey: "jobs/j1/model.onnx", verdict: "suspect" }] },
				},
				recordedAt: "2026-01-01T00:00:00.000Z",
			}),
		);
		writeFileSync(
			join(dir, "files.json"),
			JSON.stringify({
				summary: { files: 1, safe: 1, unsafe: 0, malformed: 0 },
				files: [{ key: "jobs/j1/model.onnx", report: { path: "m", format: "onnx", verdict: "safe", findings: [] } }],
			}),
		);
		const out = join(tmp, "record.html");
		const r = await ftguard(["report", dir, "-o", out]);
		expect(r.code).toBe(0);
		const html = readFileSync(out, "utf8");
		expect(html).toContain("Pipeline verdict");
		expect(html).toContain("Backdoor scan: jobs/j1/model.onnx");
		expect(html).toContain("Every file");
		expect(images(html)).toBe(20);
	});

	it("refuses what is not a report, with one line and exit 2", async () => {
		const cases: Array<[string[], RegExp]> = [
			[
				["report", join(REPO, "package.json"), "-o", join(tmp, "x.html")],
				/^ftguard: USAGE: .*package\.json: not a report ftguard renders/,
			],
			[["report", join(D8, "ref-x.npy"), "-o", join(tmp, "x.html")], /^ftguard: USAGE: .*ref-x\.npy: not JSON/],
			[["report", join(tmp, "missing.json"), "-o", join(tmp, "x.html")], /^ftguard: NOT_FOUND: /],
			[
				["report", D8, "-o", join(tmp, "x.html")],
				/^ftguard: USAGE: .*no verdict\.json, report\.json, ftguard-dataset-report\.json/,
			],
			[
				["report", join(scan, "report.json"), "-o", join(scan, "report.json")],
				/^ftguard: USAGE: --output would overwrite/,
			],
			[["report", scan, "-o", join(tmp, "no/such/dir/x.html")], /^ftguard: NOT_FOUND: cannot write/],
			[["report", scan], /error: required option '-o, --output <report.html>' not specified/],
		];
		for (const [args, message] of cases) {
			const r = await ftguard(args);
			expect(r.code, args.join(" ")).toBe(2);
			expect(r.stderr.split("\n")[0]).toMatch(message);
			expect(r.stdout).toBe("");
		}
		const json = await ftguard(["report", join(REPO, "package.json"), "-o", join(tmp, "x.html"), "--json"]);
		expect(json.code).toBe(2);
		expect(json.json()).toMatchObject({ ok: false, error: { code: "USAGE" }, exitCode: 2 });
	});

	it("--help explains the inputs with an example", async () => {
		const r = await ftguard(["report", "--help"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("ftguard report scan/ -o scan/report.html");
		expect(r.stdout).toContain("Exit codes: 0 written, 2 could not");
	});
});
