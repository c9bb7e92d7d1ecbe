/** `ftguard bind` and the binding `ftguard backdoor` runs, as a user runs them: output shapes and exit codes. */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeNpy } from "../../lib/core/backdoor/npy";
import { ftguard, REPO } from "../helpers/cli";

const B = join(REPO, "test/fixtures/binding");
/** The CLI's JSON document, navigated freely by the assertions. */
type Json = ReturnType<typeof JSON.parse>;
const tmp = mkdtempSync(join(tmpdir(), "ftguard-bind-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("ftguard bind", () => {
	it("binds an export to every checkpoint in a directory: exit 0, one block per checkpoint", async () => {
		const r = await ftguard(["bind", join(B, "mlp/model.onnx"), join(B, "mlp")]);
		expect(r.code).toBe(0);
		expect(r.stdout.match(/^BOUND /gm)).toHaveLength(2);
		expect(r.stdout).toMatch(/↔ .*mlp\/model\.safetensors\n/);
		expect(r.stdout).toMatch(/↔ .*mlp\/pytorch_model\.bin\n/);
		expect(r.stdout).toMatch(/checkpoint: 6 floating-point tensors, 100\.00% of 13\.5 KiB bound \(minimum 99%\)/);
		expect(r.stderr).toBe("");
	});

	it("--json: one document, transposed MatMul weights counted as such", async () => {
		const r = await ftguard(["bind", join(B, "seq/model.onnx"), join(B, "seq/model.safetensors"), "--json"]);
		expect(r.code).toBe(0);
		const j = r.json() as Json;
		expect(j).toMatchObject({ ok: true, verdict: "bound", model: join(B, "seq/model.onnx") });
		expect(j.bindings).toHaveLength(1);
		const b = j.bindings[0];
		expect(b).toMatchObject({
			verdict: "bound",
			weights: { kind: "safetensors", files: [join(B, "seq/model.safetensors")] },
			coverage: { fraction: 1 },
			unmatched: [],
			unbound: [],
			findings: [],
			thresholds: { minElements: 1024, minCoverage: 0.99 },
		});
		expect(b.matched.filter((m: Json) => m.form === "transposed")).toHaveLength(2);
		expect(typeof b.ms).toBe("number");
	});

	it("a weight changed by one ulp: exit 1, the tensor named in text, JSON and SARIF", async () => {
		const args = ["bind", join(B, "mlp-ulp/model.onnx"), join(B, "mlp-ulp")];
		const text = await ftguard(args);
		expect(text.code).toBe(1);
		expect(text.stdout).toMatch(/^MISMATCH /);
		expect(text.stdout).toMatch(/export-constant-unmatched: F32 constant net\.2\.weight \[32, 32\] matches no/);
		const sarif = join(tmp, "bind.sarif");
		const json = await ftguard([...args, "--json", "--sarif", sarif]);
		expect(json.code).toBe(1);
		const j = json.json() as Json;
		expect(j).toMatchObject({ ok: true, verdict: "mismatch" });
		expect(j.bindings[0].findings.map((f: Json) => f.id)).toEqual([
			"export-constant-unmatched",
			"export-tensor-unbound",
			"export-coverage-low",
		]);
		const s = JSON.parse(readFileSync(sarif, "utf8"));
		expect(s.version).toBe("2.1.0");
		expect(s.runs[0].results.map((x: Json) => x.ruleId)).toEqual(j.bindings[0].findings.map((f: Json) => f.id));
		expect(s.runs[0].results[0].locations[0].logicalLocations[0].fullyQualifiedName).toBe("net.2.weight");
	});

	it("could not check: a garbage model, a garbage checkpoint, no checkpoint, a missing file — exit 2, one line", async () => {
		const dir = join(tmp, "garbage");
		mkdirSync(dir);
		writeFileSync(join(dir, "model.onnx"), "not a model\n");
		copyFileSync(join(B, "mlp/model.safetensors"), join(dir, "model.safetensors"));
		const model = await ftguard(["bind", join(dir, "model.onnx"), dir]);
		expect(model.code).toBe(2);
		expect(model.stderr).toMatch(/^ftguard: MODEL_MALFORMED: ONNX model: [^\n]*\n$/);
		writeFileSync(
			join(dir, "bad.safetensors"),
			Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{garbage")]),
		);
		const weights = await ftguard(["bind", join(B, "mlp/model.onnx"), join(dir, "bad.safetensors"), "--json"]);
		expect(weights.code).toBe(2);
		expect(weights.json()).toMatchObject({ ok: false, error: { code: "MODEL_MALFORMED" }, exitCode: 2 });
		expect(weights.stderr).toMatch(/^ftguard: MODEL_MALFORMED: [^\n]*bad\.safetensors: safetensors: [^\n]*\n$/);
		const none = await ftguard(["bind", join(B, "mlp/model.onnx"), join(tmp, "garbage-none")]);
		expect(none.code).toBe(2);
		expect(none.stderr).toMatch(/^ftguard: NOT_FOUND: /);
		mkdirSync(join(tmp, "empty"));
		writeFileSync(join(tmp, "empty/config.json"), "{}\n");
		const empty = await ftguard(["bind", join(B, "mlp/model.onnx"), join(tmp, "empty")]);
		expect(empty.code).toBe(2);
		expect(empty.stderr).toMatch(/^ftguard: NOT_FOUND: no safetensors or PyTorch zip checkpoint in /);
	});

	it("--help documents the rules and exit codes", async () => {
		const r = await ftguard(["bind", "--help"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/Exit codes: 0 bound, 1 mismatch \(EXPORT_MISMATCH\), 2 could not check/);
	});
});

describe("ftguard backdoor binds the model to the checkpoint beside it first", () => {
	const data = join(tmp, "x.npy");
	const labels = join(tmp, "y.npy");
	writeFileSync(
		data,
		writeNpy(
			Float32Array.from({ length: 20 * 64 }, (_, i) => Math.sin(i)),
			[20, 64],
		),
	);
	writeFileSync(
		labels,
		writeNpy(
			BigInt64Array.from({ length: 20 }, (_, i) => BigInt(i % 10)),
			[20],
		),
	);
	const args = [
		"--data",
		data,
		"--labels",
		labels,
		"--detectors",
		"nc",
		"--steps",
		"2",
		"--restarts",
		"1",
		"--rule",
		"ftguard",
	];

	it("a mismatched pair is EXPORT_MISMATCH (exit 1) before any scan", async () => {
		const r = await ftguard(["backdoor", join(B, "mlp-ulp/model.onnx"), ...args, "--json"]);
		expect(r.code).toBe(1);
		const j = r.json() as Json;
		expect(j).toMatchObject({ ok: false, error: { code: "EXPORT_MISMATCH" }, exitCode: 1 });
		expect(j.error.message).toMatch(/model\.onnx ↔ .*model\.safetensors: EXPORT_MISMATCH: F32 constant net\.2\.weight/);
		expect(j.error.details.bindings[0].verdict).toBe("mismatch");
	});

	it("a bound pair is noted on stderr and the scan runs", async () => {
		const r = await ftguard(["backdoor", join(B, "mlp/model.onnx"), ...args]);
		expect(r.stderr).toMatch(/export binding: .*mlp\/model\.onnx ↔ .*mlp\/model\.safetensors: bound/);
		expect(r.stdout).toMatch(/Neural Cleanse/);
		expect([0, 1]).toContain(r.code);
	});

	/** A model folder under tmp: the MLP's export and the given files (fixture paths) at the given places. */
	function folder(name: string, files: Record<string, string>): string {
		const dir = join(tmp, name);
		for (const [to, from] of Object.entries({ "model.onnx": join(B, "mlp/model.onnx"), ...files })) {
			mkdirSync(dirname(join(dir, to)), { recursive: true });
			copyFileSync(from, join(dir, to));
		}
		return join(dir, "model.onnx");
	}

	it("binds a checkpoint in a subfolder too: a mismatched one is EXPORT_MISMATCH (exit 1)", async () => {
		const model = folder("sub", { "weights/model.safetensors": join(B, "mlp-ulp/model.safetensors") });
		const r = await ftguard(["backdoor", model, ...args]);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(
			/^ftguard: EXPORT_MISMATCH: .*model\.onnx ↔ .*weights\/model\.safetensors: EXPORT_MISMATCH/,
		);
	});

	it("weights binding cannot read in a subfolder (Flax msgpack) are could not check (exit 2)", async () => {
		const model = folder("flax", { "flax/flax_model.msgpack": join(B, "mlp-flax/flax_model.msgpack") });
		const r = await ftguard(["backdoor", model, ...args]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: MODEL_UNSUPPORTED: binding cannot read .*flax_model\.msgpack \(raw-weights\)/);
	});

	it("an export alone (its reference data beside it) is said so on stderr, and the scan runs", async () => {
		const model = folder("alone", {});
		const inside = ["--data", join(tmp, "alone/x.npy"), "--labels", join(tmp, "alone/y.npy")];
		copyFileSync(data, inside[1] as string);
		copyFileSync(labels, inside[3] as string);
		const r = await ftguard(["backdoor", model, ...inside, ...args.slice(4)]);
		expect(r.stderr).toMatch(
			/export binding: no checkpoint beside .*alone\/model\.onnx .*: the scan judges the export alone/,
		);
		expect(r.stdout).toMatch(/Neural Cleanse/);
		expect([0, 1]).toContain(r.code);
	});

	it("--weights binds to the checkpoint named instead", async () => {
		const r = await ftguard([
			"backdoor",
			join(B, "mlp/model.onnx"),
			"--weights",
			join(B, "mlp-ulp/model.safetensors"),
			...args,
		]);
		expect(r.code).toBe(1);
		expect(r.stderr).toMatch(/^ftguard: EXPORT_MISMATCH: /);
	});
});
