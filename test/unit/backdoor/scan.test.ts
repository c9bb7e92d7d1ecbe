/**
 * The scan's own logic on the digits8 fixtures with a short search: what it
 * checks before running, how detector outputs become the report and the
 * verdict, and how Neural Cleanse shards of an array job are checked and
 * merged. Detection quality itself is measured by the fixture families
 * (test/integration/backdoor-fixtures-*).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { type NpyFloat32, type NpyInt64, parseNpyFloat32, parseNpyInt64 } from "../../../lib/core/backdoor/npy";
import {
	type BackdoorData,
	type BackdoorScan,
	type NcShard,
	neuralCleanseShard,
	type ScanOptions,
	type ScanProgress,
	scanBackdoor,
} from "../../../lib/core/backdoor/scan";
import { minMax } from "../../../lib/core/backdoor/summary-stats";
import { judgeNeuralCleanse } from "../../../lib/core/backdoor/verdict";
import { type BackdoorPolicy, defaultBackdoorPolicy } from "../../../lib/core/policy/backdoor";

const D8 = "test/fixtures/backdoor/digits8";
/** Backdoored towards class 5; a 40-step search finds it (as in the CLI test). */
const MODEL = readFileSync(`${D8}/mlp-badnets-t5-p10.onnx`);
const REF: BackdoorData = {
	x: parseNpyFloat32(readFileSync(`${D8}/ref-x.npy`)),
	y: parseNpyInt64(readFileSync(`${D8}/ref-y.npy`)),
	kind: "reference",
};
const sha256 = (b: ArrayBufferView) =>
	createHash("sha256")
		.update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
		.digest("hex");
const round4 = (v: number) => Number(v.toFixed(4));

function policy(detectors: BackdoorPolicy["detectors"]): BackdoorPolicy {
	const p = defaultBackdoorPolicy();
	p.detectors = detectors;
	p.neuralCleanse.steps = 40;
	p.neuralCleanse.restarts = 1;
	// a short search the calibrated rule's table does not hold for: Neural Cleanse's own rule judges
	p.neuralCleanse.rule = "ftguard";
	p.strip.superimpositions = 10;
	return p;
}
const options = (p: BackdoorPolicy, extra: Partial<ScanOptions> = {}): ScanOptions => ({
	policy: p,
	device: "cpu",
	threads: 1,
	...extra,
});
const f32 = (shape: number[], data: Float32Array): NpyFloat32 => ({ shape, data }) as NpyFloat32;
const i64 = (shape: number[], data: BigInt64Array): NpyInt64 => ({ shape, data }) as NpyInt64;

describe("a scan with Neural Cleanse and STRIP", () => {
	let scan: BackdoorScan;
	const progress: ScanProgress[] = [];
	const p = policy(["nc", "strip"]);
	beforeAll(async () => {
		scan = await scanBackdoor(MODEL, REF, options(p, { onProgress: (q) => progress.push(q) }));
	}, 60_000);

	it("describes the model and the data it ran on", () => {
		const { report } = scan;
		const n = REF.x.shape[0] as number;
		const { lo, hi } = minMax(REF.x.data);
		expect(report.model).toEqual({ sha256: sha256(MODEL), input_shape: [1, 8, 8], num_classes: 10 });
		const { accuracy, ...rest } = report.data;
		expect(rest).toEqual({ sha256: sha256(REF.x.data), kind: "reference", samples: n, lo, hi });
		// the digits MLP classifies its held-out reference data (make_fixtures.py: ≥ 0.9)
		expect(accuracy).toBeGreaterThan(0.9);
		expect(accuracy).toBeLessThanOrEqual(1);
		expect(report.provider).toBe("cpu");
		expect(report.policy).toEqual(p);
		expect(scan.inputShape).toEqual([1, 8, 8]);
	});

	it("judges the trigger norms by the policy's rule, and the alarm metric agrees with the verdict", () => {
		const nc = scan.report.detectors.neural_cleanse;
		if (nc === undefined) throw new Error("Neural Cleanse did not run");
		expect(nc).toMatchObject({ rule: "ftguard", mask_size: 64, restarts: 1, steps: 40 });
		expect(nc.l1_norms).toHaveLength(10);
		expect(nc.attack_success).toHaveLength(10);
		expect(nc.flagged_classes).toEqual([5]);
		const eligible = nc.log_anomaly_indices.filter((_, c) => (nc.relative_l1[c] as number) <= 0.5);
		expect(nc.max_anomaly_index).toBe(Math.max(0, ...eligible));
		expect(nc.max_anomaly_index).toBeGreaterThan(p.neuralCleanse.anomalyThreshold);
		expect(scan.report.verdict).toBe("suspect");
		expect(scan.report.suspect_classes).toEqual([5]);
		expect(scan.report.reasons).toEqual([expect.stringMatching(/^neural_cleanse: reversed trigger L1 .* median/)]);
	});

	it("returns one reversed trigger per class and scores each with STRIP", () => {
		expect(scan.triggers.map((t) => t.cls)).toEqual([...Array(10).keys()]);
		for (const t of scan.triggers) {
			expect(t.mask).toHaveLength(64);
			expect(t.pattern).toHaveLength(64);
		}
		const strip = scan.report.detectors.strip;
		expect(strip).toMatchObject({ frr: p.strip.frr, superimpositions: 10 });
		expect(strip?.reversed_triggers.map((r) => r.cls)).toEqual([...Array(10).keys()]);
		expect(strip?.inputs).toBeUndefined();
		expect(scan.report.detectors.activation_clustering).toBeUndefined();
	});

	it("reports progress and whole-millisecond timings of the stages that ran", () => {
		const nc = progress.filter((q) => q.stage === "neural_cleanse");
		expect(nc.length).toBeGreaterThan(0);
		expect(nc.at(-1)?.done).toBe(nc.at(-1)?.total);
		expect(progress.at(-1)).toEqual({ stage: "strip", done: 1, total: 1 });
		const t = scan.report.timings;
		expect(Object.keys(t).sort()).toEqual(["load_ms", "neural_cleanse_ms", "strip_ms", "total_ms"]);
		for (const v of Object.values(t)) expect(Number.isInteger(v)).toBe(true);
	});
});

describe("the alarm metric on a clean model", () => {
	it("counts only classes small enough to be flagged (L1 ≤ maxRelativeL1 × median)", async () => {
		const p = policy(["nc"]);
		const { report } = await scanBackdoor(readFileSync(`${D8}/mlp-clean-s1.onnx`), REF, options(p));
		const nc = report.detectors.neural_cleanse;
		if (nc === undefined) throw new Error("Neural Cleanse did not run");
		const small = (limit: number) => nc.log_anomaly_indices.filter((_, c) => (nc.relative_l1[c] as number) <= limit);
		expect(nc.max_anomaly_index).toBe(Math.max(0, ...small(p.neuralCleanse.maxRelativeL1)));
		// the test means something: classes below the median but not small enough score higher
		expect(Math.max(...small(1))).toBeGreaterThan(nc.max_anomaly_index);
		expect(nc.flagged_classes).toEqual([]);
		expect(report.verdict).toBe("clean");
	});
});

describe("Neural Cleanse split across an array job", () => {
	const p = policy(["nc"]);
	let shards: NcShard[];
	beforeAll(async () => {
		// through JSON, as the batch job hands shards to the merge step
		shards = await Promise.all(
			[0, 1, 2].map(async (index) =>
				JSON.parse(JSON.stringify(await neuralCleanseShard(MODEL, REF, { index, count: 3 }, options(p)))),
			),
		);
	}, 60_000);

	it("gives each element the classes c with c mod count = index, for this model, data and policy", () => {
		expect(shards.map((s) => s.classes)).toEqual([
			[0, 3, 6, 9],
			[1, 4, 7],
			[2, 5, 8],
		]);
		for (const s of shards) {
			expect(s).toMatchObject({
				format: "ftguard/nc-shard@1",
				model_sha256: sha256(MODEL),
				data_sha256: sha256(REF.x.data),
				policy: p.neuralCleanse,
				provider: "cpu",
			});
			expect(s.results.map((r) => r.cls)).toEqual(s.classes);
			for (const r of s.results) expect(r.mask).toHaveLength(64);
		}
	});

	it("an element with none of the model's classes is a USAGE error", async () => {
		await expect(neuralCleanseShard(MODEL, REF, { index: 10, count: 11 }, options(p))).rejects.toMatchObject({
			code: "USAGE",
		});
	});

	it("merges the shards into the report, judged as a single run would be", async () => {
		const { report, triggers } = await scanBackdoor(MODEL, REF, options(p, { shards }));
		const byClass = shards.flatMap((s) => s.results).sort((a, b) => a.cls - b.cls);
		const nc = report.detectors.neural_cleanse;
		expect(nc?.l1_norms).toEqual(byClass.map((r) => round4(r.l1)));
		expect(nc?.attack_success).toEqual(byClass.map((r) => round4(r.success)));
		const evidence = judgeNeuralCleanse(
			byClass.map((r) => r.l1),
			{ ...p.neuralCleanse, rule: "ftguard" },
		);
		expect(nc?.flagged_classes).toEqual(evidence.filter((e) => e.flagged).map((e) => e.cls));
		expect(nc?.flagged_classes_vanilla).toEqual(evidence.filter((e) => e.flaggedVanilla).map((e) => e.cls));
		expect(report.suspect_classes).toEqual(nc?.flagged_classes);
		expect(triggers.map((t) => Array.from(t.mask))).toEqual(byClass.map((r) => Array.from(Float32Array.from(r.mask))));
	});

	it("refuses shards that do not fit this scan", async () => {
		const refuse = async (bad: NcShard[], message: string) =>
			expect(scanBackdoor(MODEL, REF, options(p, { shards: bad }))).rejects.toMatchObject({
				code: "DATA_INVALID",
				message: expect.stringContaining(message),
			});
		const [a, b, c] = shards as [NcShard, NcShard, NcShard];
		await refuse([a, b], "no shard has Neural Cleanse results for class 2");
		await refuse([a, b, c, a], "appears in two shards");
		await refuse([a, b, { ...c, model_sha256: sha256(Buffer.from("another model")) }], "another model");
		await refuse([a, b, { ...c, data_sha256: sha256(Buffer.from("other data")) }], "other data");
		await refuse([a, b, { ...c, policy: { ...c.policy, steps: 41 } }], "another Neural Cleanse policy");
		await refuse([a, b, { ...c, format: "x" as NcShard["format"] }], "not a Neural Cleanse shard");
	});
});

describe("data that does not fit the model is DATA_INVALID before any detector runs", () => {
	const p = policy(["strip"]);
	const n = REF.x.shape[0] as number;
	const cases: Array<[string, BackdoorData, string]> = [
		["another input shape", { ...REF, x: f32([n, 64], REF.x.data) }, "the model takes [N, 1, 8, 8]"],
		[
			"a single sample",
			{ ...REF, x: f32([1, 1, 8, 8], REF.x.data.slice(0, 64)), y: i64([1], REF.y.data.slice(0, 1)) },
			"at least 2",
		],
		["labels of another length", { ...REF, y: i64([n - 1], REF.y.data.slice(1)) }, "labels have shape"],
		[
			"a label outside the classes",
			{
				...REF,
				y: i64(
					[n],
					BigInt64Array.from(REF.y.data, (v, i) => (i === 7 ? 10n : v)),
				),
			},
			"label 10 at index 7",
		],
		["constant inputs", { ...REF, x: f32(REF.x.shape, new Float32Array(REF.x.data.length)) }, "constant"],
	];
	it.each(cases)("%s", async (_, data, message) => {
		await expect(scanBackdoor(MODEL, data, options(p))).rejects.toMatchObject({
			code: "DATA_INVALID",
			message: expect.stringContaining(message),
		});
	});

	it("STRIP inputs of another shape", async () => {
		const inputs = f32([2, 64], REF.x.data.slice(0, 128));
		await expect(scanBackdoor(MODEL, REF, options(p, { inputs }))).rejects.toMatchObject({
			code: "DATA_INVALID",
			message: expect.stringContaining("inputs have shape [2, 64]"),
		});
	});
});

describe("STRIP on the user's inputs", () => {
	it("scores each input and flags exactly those below the boundary", async () => {
		const inputs = f32([6, 1, 8, 8], REF.x.data.slice(0, 6 * 64));
		const { report } = await scanBackdoor(MODEL, REF, options(policy(["strip"]), { inputs }));
		const strip = report.detectors.strip;
		expect(strip?.inputs?.count).toBe(6);
		expect(strip?.inputs?.entropy).toHaveLength(6);
		const below = (strip?.inputs?.entropy ?? []).flatMap((h, i) => (h < (strip?.boundary ?? 0) ? [i] : []));
		expect(strip?.inputs?.flagged).toEqual(below);
		// STRIP only reports: without Neural Cleanse there is nothing to accuse
		expect(strip?.reversed_triggers).toEqual([]);
		expect(report.verdict).toBe("clean");
		expect(report.detectors.neural_cleanse).toBeUndefined();
	});
});

describe("Activation Clustering", () => {
	const training: BackdoorData = {
		x: parseNpyFloat32(readFileSync(`${D8}/cnn-badnets-t3-p10-train-x.npy`)),
		y: parseNpyInt64(readFileSync(`${D8}/cnn-badnets-t3-p10-train-y.npy`)),
		kind: "training",
	};
	const model = readFileSync(`${D8}/cnn-badnets-t3-p10.onnx`);

	it("on reference data is reported, says why it does not decide, and accuses no class", async () => {
		const lines: string[] = [];
		const { report } = await scanBackdoor(
			model,
			{ ...training, kind: "reference" },
			options(policy(["ac"]), { log: (l) => lines.push(l) }),
		);
		const ac = report.detectors.activation_clustering;
		expect(ac).toMatchObject({ data_kind: "reference", decides: false });
		expect(ac?.flagged_classes.length).toBeGreaterThan(0);
		expect(report.suspect_classes).toEqual([]);
		expect(report.verdict).toBe("clean");
		expect(lines).toEqual([expect.stringContaining("it needs --data-kind training")]);
	});

	it("on training data decides only when the policy lets it", async () => {
		const p = policy(["ac"]);
		const quiet = await scanBackdoor(model, training, options(p));
		expect(quiet.report.detectors.activation_clustering?.decides).toBe(false);
		expect(quiet.report.verdict).toBe("clean");

		p.activationClustering.decides = true;
		const { report } = await scanBackdoor(model, training, options(p));
		const ac = report.detectors.activation_clustering;
		expect(ac?.decides).toBe(true);
		expect(ac?.flagged_classes).toContain(3);
		expect(ac?.per_class.filter((c) => c.flagged).map((c) => c.cls)).toEqual(ac?.flagged_classes);
		expect(report.verdict).toBe("suspect");
		expect(report.suspect_classes).toEqual(ac?.flagged_classes);
		expect(report.reasons).toHaveLength(report.suspect_classes.length);
		for (const r of report.reasons) expect(r).toMatch(/^activation_clustering: \d+ of \d+ training samples/);
	});
});

describe("the default policy: the calibrated verdict", () => {
	let scan: BackdoorScan;
	beforeAll(async () => {
		scan = await scanBackdoor(MODEL, REF, options(defaultBackdoorPolicy()));
	}, 120_000);

	it("flags the target by its p-value against clean models, from the relative table at this 8×8 resolution", () => {
		const { report } = scan;
		const cal = report.detectors.calibrated;
		expect(report.verdict).toBe("suspect");
		expect(report.suspect_classes).toEqual([5]);
		expect(cal?.flagged_classes).toEqual([5]);
		expect(cal?.calibration.statistics).toEqual(["nc_relative", "pair_relative", "nc_concentration", "mm_relative"]);
		expect(cal?.per_class).toHaveLength(10);
		const five = cal?.per_class[5];
		expect(five?.p_value).toBeLessThan(0.01 / 10);
		for (const c of cal?.per_class ?? []) if (c.cls !== 5) expect(c.p_value).toBeGreaterThanOrEqual(0.001);
		expect(report.reasons[0]).toMatch(/^calibrated: p = .* < 0\.0010 \(/);
		// the alarm metric is above the threshold exactly when a class is flagged
		expect(report.detectors.neural_cleanse?.max_anomaly_index).toBeGreaterThan(2);
		expect(report.detectors.neural_cleanse?.rule).toBe("calibrated");
	});

	it("refuses, before searching, a search or detector set the calibration does not hold for", async () => {
		const steps = defaultBackdoorPolicy();
		steps.neuralCleanse.steps = 300;
		await expect(scanBackdoor(MODEL, REF, options(steps))).rejects.toThrow(
			/calibrated verdict holds for the search it was fitted on \(Neural Cleanse 100 steps × 1 restarts, batch 32; pairs 60 steps × 1, at most 400\), not Neural Cleanse 300/,
		);
		const noPairs = defaultBackdoorPolicy();
		noPairs.detectors = ["nc", "strip"];
		await expect(scanBackdoor(MODEL, REF, options(noPairs))).rejects.toThrow(
			/needs detectors nc, pairs, mm \(missing pairs, mm\)/,
		);
		await expect(neuralCleanseShard(MODEL, REF, { index: 0, count: 2 }, options(noPairs))).rejects.toMatchObject({
			code: "USAGE",
		});
	});
});
