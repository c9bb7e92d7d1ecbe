/** `ftguard backdoor` as a user runs it: output shapes, files written, exit codes, and every way to fail. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseNpyFloat32, parseNpyInt64, writeNpy } from "../../lib/core/backdoor/npy";
import { ftguard, REPO } from "../helpers/cli";

const D8 = join(REPO, "test/fixtures/backdoor/digits8");
const DATA = ["--data", join(D8, "ref-x.npy"), "--labels", join(D8, "ref-y.npy")];
// a short search: the MLP backdoor is found well within it (the full search is the default)
// a short search: Neural Cleanse's own rule judges (the calibrated default holds for its own search)
const FAST = ["--steps", "40", "--restarts", "1", "--rule", "ftguard"];
/** Scans a model of the calibration population (test/fixtures/backdoor-wide) with its data set's reference data. */
function scanWide(dataset: string, file: string, ...extra: string[]) {
	const W = join(REPO, "test/fixtures/backdoor-wide", dataset);
	const data = ["--data", join(W, "ref-x.npy"), "--labels", join(W, "ref-y.npy")];
	return ftguard(["backdoor", join(W, file), ...data, "--detectors", "nc,pairs,mm", ...extra]);
}
/** The CLI's JSON document, navigated freely by the assertions. */
type Json = ReturnType<typeof JSON.parse>;
const tmp = mkdtempSync(join(tmpdir(), "ftguard-backdoor-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("ftguard backdoor", () => {
	it("flags a backdoored model: exit 1, the issue's JSON shape, report and trigger images in --out", async () => {
		const out = join(tmp, "out");
		const r = await ftguard([
			"backdoor",
			join(D8, "mlp-badnets-t5-p10.onnx"),
			...DATA,
			...FAST,
			"--out",
			out,
			"--json",
		]);
		expect(r.code).toBe(1);
		const j = r.json() as Json;
		expect(j).toMatchObject({ ok: true, verdict: "suspect", suspect_classes: [5] });
		const nc = j.detectors.neural_cleanse;
		expect(nc.l1_norms).toHaveLength(10);
		expect(nc.anomaly_indices).toHaveLength(10);
		expect(nc.flagged_classes).toEqual([5]);
		expect(nc.max_anomaly_index).toBeGreaterThan(2);
		expect(j.detectors.strip.reversed_triggers).toHaveLength(10);
		expect(j.detectors.strip.boundary).toBeGreaterThan(0);
		expect(j.timings.neural_cleanse_ms).toBeGreaterThan(0);
		expect(j.reasons[0]).toMatch(/^neural_cleanse: reversed trigger L1 /);
		// the file report is the JSON report; images: mask and stamp for every class
		const saved = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
		expect(saved.suspect_classes).toEqual([5]);
		expect(readdirSync(join(out, "triggers")).sort()).toHaveLength(20);
		expect(readFileSync(join(out, "triggers/class-5-trigger.png")).subarray(1, 4).toString()).toBe("PNG");
	});

	it("names a second target of a 3-target model: the others are judged on nc_area once one class is flagged", async () => {
		const r = await scanWide("c5", "cnn-multi-t0+2+4-p15.onnx", "--json");
		expect(r.code).toBe(1);
		const j = r.json() as Json;
		// targets 0, 2, 4: class 2's nc_area (z 2.47) stays under the 2.88 a class of five needs
		expect(j.suspect_classes).toEqual([0, 4]);
		// each class's reversed mask: the share of its mass in the densest 6×6 window (reported)
		const conc = j.detectors.neural_cleanse.concentration as number[];
		expect(conc).toHaveLength(5);
		for (const v of conc) expect(v > 0 && v <= 1).toBe(true);
		const per = j.detectors.calibrated.per_class as Array<{ cls: number; stage: number; strongest: string }>;
		expect(per.filter((c) => c.stage === 2).map((c) => [c.cls, c.strongest])).toEqual([[0, "nc_area"]]);
		expect(j.reasons.join("\n")).toMatch(/nc_area z 2\.96 against clean models, judged alone once class 4 was flagged/);
	});

	it("refuses (exit 2) reference data with one input of a class under the calibrated rule: a pair search on it is noise", async () => {
		const W = join(REPO, "test/fixtures/backdoor-wide/c5");
		const x = parseNpyFloat32(readFileSync(join(W, "ref-x.npy")));
		const y = parseNpyInt64(readFileSync(join(W, "ref-y.npy")));
		const keep = [...y.data.keys()].filter((i) => y.data[i] !== 0n || i === y.data.indexOf(0n));
		const per = x.data.length / y.data.length;
		const xs = new Float32Array(keep.length * per);
		for (const [k, i] of keep.entries()) xs.set(x.data.subarray(i * per, (i + 1) * per), k * per);
		writeFileSync(join(tmp, "one-x.npy"), writeNpy(xs, [keep.length, ...x.shape.slice(1)]));
		writeFileSync(
			join(tmp, "one-y.npy"),
			writeNpy(BigInt64Array.from(keep.map((i) => y.data[i] as bigint)), [keep.length]),
		);
		const r = await ftguard([
			"backdoor",
			join(W, "cnn-clean-s1.onnx"),
			"--data",
			join(tmp, "one-x.npy"),
			"--labels",
			join(tmp, "one-y.npy"),
		]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/DATA_INVALID.*at least 10 reference inputs of every class .*class 0: 1/);
	});

	it("refuses (exit 2) reference labels the model does not match (rotated: accuracy 0) under the calibrated rule", async () => {
		const W = join(REPO, "test/fixtures/backdoor-wide/c5");
		const y = parseNpyInt64(readFileSync(join(W, "ref-y.npy")));
		// every class keeps its 20 inputs, so only the accuracy check can refuse it
		writeFileSync(
			join(tmp, "rot-y.npy"),
			writeNpy(
				y.data.map((v) => (v + 1n) % 5n),
				[y.data.length],
			),
		);
		const r = await ftguard([
			"backdoor",
			join(W, "cnn-clean-s1.onnx"),
			"--data",
			join(W, "ref-x.npy"),
			"--labels",
			join(tmp, "rot-y.npy"),
		]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/DATA_INVALID.*accuracy 0\.0\d\d \(chance 0\.200; the calibrated verdict needs 0\.600\)/);
		// the true labels: the accuracy is reported
		const ok = await scanWide("c5", "cnn-clean-s1.onnx", "--json");
		expect(ok.code).toBe(0);
		expect((ok.json() as Json).data.accuracy).toBeGreaterThan(0.9);
	});

	it("could not check (exit 2), not suspect, a clean model outside the calibration population (patch embeddings)", async () => {
		const r = await scanWide("c3", "patchln-clean-s1.onnx", "--json");
		expect(r.code).toBe(2);
		const j = r.json() as Json;
		expect(j.ok).toBe(false);
		expect(j.error.code).toBe("OUT_OF_CALIBRATION");
		expect(j.error.message).toMatch(/every class's trigger is smaller than the clean models' .*3\.92 robust SDs/);
		// what the relative statistics alone would name, for a reviewer: reported, not a verdict
		expect(j.error.details.relative_candidates.map((c: { cls: number }) => c.cls)).toEqual([2]);
		expect(j.error.details.limit).toBe(2.326);
	});

	it("inside the population the report says how far the model's typical class lies from the clean models'", async () => {
		const r = await scanWide("c3", "cnn-clean-s1.onnx", "--json");
		expect(r.code).toBe(0);
		const cal = (r.json() as Json).detectors.calibrated;
		expect(cal.outside).toBeUndefined();
		// c3 CNN (fit split): its classes' median nc_area z 0.45, (0.45 − 0.41) / 1.05 beyond the clean models' typical
		expect(cal.population.shift).toBeCloseTo(0.04, 1);
		expect(cal.population.limit).toBe(2.326);
	});

	it("outside the population, a class Neural Cleanse's own rule flags is named (suspect, exit 1): a patch target in a patch-embedding model", async () => {
		const r = await scanWide("c10", "patchln-patch-t4-p8.onnx");
		expect(r.code).toBe(1);
		expect(r.stdout).toMatch(/^SUSPECT /);
		expect(r.stdout).toMatch(
			/calibrated: outside the calibration population \(typical class 3\.47 robust SDs .*Neural Cleanse's own rule decides: reversed trigger L1 1\.7\d* is 0\.4\d*× the median/,
		);
		expect(r.stdout).toMatch(/outside the population it was fitted on .*Neural Cleanse's own rule decided/);
		// only the target: the area statistics (every class of this model, against the table) are not judged
		expect(r.stdout).not.toMatch(/^ {2}calibrated: p = /m);
	});

	it("passes a clean model: exit 0, human-readable table", async () => {
		const r = await ftguard(["backdoor", join(D8, "mlp-clean-s1.onnx"), ...DATA, ...FAST]);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/^CLEAN /);
		expect(r.stdout).toMatch(/Neural Cleanse \(40 steps × 1 restarts, rule ftguard; mask size 64\)/);
		expect(r.stdout).toMatch(/STRIP: entropy boundary/);
	});

	it("activation clustering on reference data is reported but does not decide", async () => {
		const r = await ftguard([
			"backdoor",
			join(D8, "mlp-clean-s1.onnx"),
			...DATA,
			"--detectors",
			"ac",
			"--rule",
			"ftguard",
			"--json",
		]);
		expect(r.code).toBe(0);
		const j = r.json() as Json;
		expect(j.detectors.activation_clustering).toMatchObject({ data_kind: "reference", decides: false });
		expect(j.verdict).toBe("clean");
		expect(r.stderr).toMatch(/reported but does not decide \(clean reference data/);
	});

	it("activation clustering on training samples finds the poisoned ones; it decides only when the policy says so", async () => {
		const model = join(D8, "cnn-badnets-t3-p10.onnx");
		const train = [
			"--data",
			join(D8, "cnn-badnets-t3-p10-train-x.npy"),
			"--labels",
			join(D8, "cnn-badnets-t3-p10-train-y.npy"),
		];
		const args = [
			"backdoor",
			model,
			...train,
			"--data-kind",
			"training",
			"--detectors",
			"ac",
			"--rule",
			"ftguard",
			"--json",
		];
		const reported = await ftguard(args);
		expect(reported.code).toBe(0);
		const ac = (reported.json() as Json).detectors.activation_clustering;
		expect(ac).toMatchObject({ data_kind: "training", decides: false });
		expect(ac.flagged_classes).toContain(3);
		// the minority cluster of the target class is mostly the poisoned (trigger-stamped, relabelled) samples
		const poisoned = parseNpyInt64(readFileSync(join(D8, "cnn-badnets-t3-p10-train-poisoned.npy"))).data;
		const minority: number[] = ac.per_class.find((c: { cls: number }) => c.cls === 3).minority_indices;
		const hits = minority.filter((i) => poisoned[i] === 1n).length;
		expect(hits / minority.length).toBeGreaterThanOrEqual(0.7);
		const policy = join(tmp, "ac-decides.json");
		writeFileSync(policy, JSON.stringify({ backdoor: { activationClustering: { decides: true } } }));
		const decided = await ftguard([...args, "--policy", policy]);
		expect(decided.code).toBe(1);
		expect((decided.json() as Json).suspect_classes).toContain(3);
	});

	it("STRIP on --inputs: inputs carrying the trigger are flagged, clean ones are not", async () => {
		const x = parseNpyFloat32(readFileSync(join(D8, "ref-x.npy")));
		const clean = x.data.slice(0, 40 * 64);
		const stamped = clean.slice();
		// this model's BadNets trigger (make_fixtures.py): a 2×2 white patch in the bottom-right corner
		for (let i = 0; i < 40; i++)
			for (const [r, c] of [
				[6, 6],
				[6, 7],
				[7, 6],
				[7, 7],
			] as const)
				stamped[i * 64 + r * 8 + c] = 1;
		const both = join(tmp, "inputs.npy");
		const all = new Float32Array(80 * 64);
		all.set(clean, 0);
		all.set(stamped, 40 * 64);
		writeFileSync(both, writeNpy(all, [80, 1, 8, 8]));
		const r = await ftguard([
			"backdoor",
			join(D8, "mlp-badnets-t5-p10.onnx"),
			...DATA,
			...FAST,
			"--inputs",
			both,
			"--json",
		]);
		const inputs = (r.json() as Json).detectors.strip.inputs;
		expect(inputs.count).toBe(80);
		const flaggedClean = inputs.flagged.filter((i: number) => i < 40).length;
		const flaggedStamped = inputs.flagged.filter((i: number) => i >= 40).length;
		expect(flaggedStamped).toBeGreaterThanOrEqual(30);
		expect(flaggedClean).toBeLessThanOrEqual(4);
	});

	it("--help documents the exit codes", async () => {
		const r = await ftguard(["backdoor", "--help"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(/Exit codes: 0 clean, 1 suspect, 2 could not scan/);
	});

	describe("could not scan: exit 2 with a stable code and one line", () => {
		const bad = join(tmp, "bad");
		const cases: Array<[string, () => string[], string]> = [
			["no --data", () => ["backdoor", join(D8, "mlp-clean-s1.onnx"), "--labels", join(D8, "ref-y.npy")], ""],
			[
				"--inputs without STRIP",
				() => [
					"backdoor",
					join(D8, "mlp-clean-s1.onnx"),
					...DATA,
					"--detectors",
					"nc",
					"--inputs",
					join(D8, "ref-x.npy"),
				],
				"USAGE",
			],
			["unknown detector", () => ["backdoor", join(D8, "mlp-clean-s1.onnx"), ...DATA, "--detectors", "nc,xx"], "USAGE"],
			["unknown device", () => ["backdoor", join(D8, "mlp-clean-s1.onnx"), ...DATA, "--device", "tpu"], ""],
			["steps 0", () => ["backdoor", join(D8, "mlp-clean-s1.onnx"), ...DATA, "--steps", "0"], ""],
			["missing model", () => ["backdoor", join(tmp, "none.onnx"), ...DATA], "NOT_FOUND"],
			[
				"labels as data",
				() => [
					"backdoor",
					join(D8, "mlp-clean-s1.onnx"),
					"--data",
					join(D8, "ref-y.npy"),
					"--labels",
					join(D8, "ref-y.npy"),
				],
				"DATA_INVALID",
			],
			[
				"data of another shape",
				() => ["backdoor", join(REPO, "test/fixtures/backdoor/digits16c/mlp-clean-s1.onnx"), ...DATA],
				"DATA_INVALID",
			],
			[
				"a pickle, not ONNX",
				() => ["backdoor", join(REPO, "test/fixtures/pickle/benign-state-dict.pt"), ...DATA],
				"MODEL_MALFORMED",
			],
			[
				"a graph with control flow",
				() => ["backdoor", join(REPO, "test/fixtures/formats/onnx/nested-subgraph.onnx"), ...DATA],
				"MODEL_UNSUPPORTED",
			],
			[
				"a policy with a misspelt key",
				() => {
					writeFileSync(bad, JSON.stringify({ backdoor: { neuralCleanse: { stepz: 10 } } }));
					return ["backdoor", join(D8, "mlp-clean-s1.onnx"), ...DATA, "--policy", bad];
				},
				"USAGE",
			],
			[
				"labels out of range",
				() => {
					const y = join(tmp, "y-bad.npy");
					const labels = new BigInt64Array(200).fill(3n);
					labels[17] = 10n;
					writeFileSync(y, writeNpy(labels, [200]));
					return ["backdoor", join(D8, "mlp-clean-s1.onnx"), "--data", join(D8, "ref-x.npy"), "--labels", y];
				},
				"DATA_INVALID",
			],
		];
		for (const [name, args, code] of cases) {
			it(name, async () => {
				const r = await ftguard([...args(), "--json"]);
				expect(r.code).toBe(2);
				if (code !== "") {
					expect((r.json() as { error: { code: string } }).error.code).toBe(code);
					expect(
						r.stderr
							.trim()
							.split("\n")
							.filter((l) => l.startsWith("ftguard:")),
					).toHaveLength(1);
				}
				expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
			});
		}
	});
});
