/** `ftguard files` as a user runs it: verdicts, exit codes, JSON, SARIF. */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ftguard, REPO } from "../helpers/cli";

const PICKLES = join(REPO, "test/fixtures/pickle");
const FORMATS = join(REPO, "test/fixtures/formats");

function model(files: Record<string, string>): string {
	const d = mkdtempSync(join(tmpdir(), "ftguard-files-"));
	for (const [name, from] of Object.entries(files)) copyFileSync(from, join(d, name));
	return d;
}

describe("ftguard files", () => {
	it("exits 0 when every file is safe, and says so per file", async () => {
		const d = model({
			"model.safetensors": join(FORMATS, "safetensors/clean.safetensors"),
			"model.onnx": join(FORMATS, "onnx/clean.onnx"),
		});
		const r = await ftguard(["files", d, "--json"]);
		expect(r.code).toBe(0);
		const out = r.json() as { files: { path: string; format: string; verdict: string }[]; summary: { safe: number } };
		expect(out.files.map((f) => [f.path, f.format, f.verdict])).toEqual([
			[join(d, "model.onnx"), "onnx", "safe"],
			[join(d, "model.safetensors"), "safetensors", "safe"],
		]);
		expect(out.summary.safe).toBe(2);
	});

	it("refuses a benign torch checkpoint by default (pickle-forbidden) and accepts it with --allow-pickle", async () => {
		const d = model({ "pytorch_model.bin": join(PICKLES, "benign-state-dict.pt") });
		const refused = await ftguard(["files", d, "--json"]);
		expect(refused.code).toBe(1);
		expect(refused.json()).toMatchObject({
			files: [{ format: "pytorch-zip", verdict: "unsafe", findings: [{ id: "pickle-forbidden" }] }],
		});
		const allowed = await ftguard(["files", d, "--allow-pickle"]);
		expect(allowed.code).toBe(0);
		expect(allowed.stdout).toMatch(/^SAFE\s+pytorch-zip/m);
	});

	it("names the dangerous global of a malicious checkpoint even with --allow-pickle, and writes SARIF", async () => {
		const d = model({ "model.pt": join(PICKLES, "malicious-torch-zip-other-name.pt") });
		const sarif = join(d, "..", "out.sarif");
		const r = await ftguard(["files", join(d, "model.pt"), "--allow-pickle", "--sarif", sarif]);
		expect(r.code).toBe(1);
		expect(r.stdout).toMatch(/critical\s+dangerous-global: .*system/);
		const doc = JSON.parse(readFileSync(sarif, "utf8"));
		expect(doc.version).toBe("2.1.0");
		expect(doc.runs[0].results.some((x: { ruleId: string }) => x.ruleId === "dangerous-global")).toBe(true);
	});

	it("reports a malformed file with exit 1", async () => {
		const d = model({
			"range.onnx": join(FORMATS, "onnx/external-ok/range.onnx"),
			"weights.bin": join(FORMATS, "onnx/external-ok/weights.bin"),
		});
		const r = await ftguard(["files", d, "--json"]);
		expect(r.code).toBe(1);
		expect(r.json()).toMatchObject({ summary: { malformed: 1 } });
	});

	it("a file no loader explains is unsafe; --inert declares it, and never hides a pickle", async () => {
		const d = mkdtempSync(join(tmpdir(), "ftguard-files-"));
		writeFileSync(join(d, "lookup.dat"), Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 250, 251, 0, 7]));
		const unknown = await ftguard(["files", d, "--json"]);
		expect(unknown.code).toBe(1);
		expect(unknown.json()).toMatchObject({
			files: [{ format: "unknown", verdict: "unsafe", findings: [{ id: "unknown-format", severity: "high" }] }],
		});
		const declared = await ftguard(["files", d, "--inert", "*.dat", "--json"]);
		expect(declared.code).toBe(0);
		expect(declared.json()).toMatchObject({
			files: [{ format: "unknown", verdict: "safe", findings: [{ id: "unknown-format", severity: "low" }] }],
		});
		// a pickle under the declared name is still read by pickle.load from byte 0
		copyFileSync(join(PICKLES, "malicious-os-system.pkl"), join(d, "lookup.dat"));
		const hidden = await ftguard(["files", d, "--inert", "*.dat", "--allow-pickle"]);
		expect(hidden.code).toBe(1);
		expect(hidden.stdout).toMatch(/dangerous-global: .*system/);
	});

	it("cannot scan a missing path: exit 2 with a code", async () => {
		const r = await ftguard(["files", "/nonexistent/model"]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: NOT_FOUND/);
	});
});
