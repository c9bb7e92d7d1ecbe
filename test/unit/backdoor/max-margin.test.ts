/**
 * MM-BD's maximum-margin statistic (max-margin.ts, mm-graph.ts, MmRunner): the
 * margin and its gradient on a real fixture model against a direct computation
 * and float64 central finite differences, seeded determinism, the gamma null of
 * the paper's detection rule, and per-class margins on every digits16c fixture
 * (a backdoor's target must have the largest maximum margin; printed for all).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fitGamma, incompleteGamma } from "../../../lib/core/backdoor/gamma";
import { MM_DEFAULTS, maxMargin, mmbdDetection } from "../../../lib/core/backdoor/max-margin";
import { parseNpyFloat32 } from "../../../lib/core/backdoor/npy";
import { readOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { MmRunner, OnnxInferenceRunner } from "../../../lib/core/backdoor/runtime";
import { median, minMax } from "../../../lib/core/backdoor/summary-stats";
import { FIXTURES, fixtureModels } from "../../helpers/backdoor-fixtures";
import { uniform } from "./grad-check";

const DIGITS = join(FIXTURES, "digits16c");
const load = (file: string) => readOnnxModel(readFileSync(join(FIXTURES, file)));

/** margin = logit_t − max_{j≠t} logit_j of one logits row, in float64 */
function marginOf(row: ArrayLike<number>, t: number): number {
	let other = Number.NEGATIVE_INFINITY;
	for (let j = 0; j < row.length; j++) if (j !== t) other = Math.max(other, row[j] as number);
	return (row[t] as number) - other;
}

const toBox = (raw: ArrayLike<number>, lo: number, hi: number) =>
	Float32Array.from(raw, (r) => lo + ((hi - lo) * (Math.tanh(r) + 1)) / 2);

describe("max-margin graph on digits16c cnn-badnets-t4-p10", () => {
	const K = 3;
	const targets = [4, 0, 7];
	let runner: MmRunner;
	let inf: OnnxInferenceRunner;
	let n: number;
	let C: number;
	const lo = new Float32Array(768).fill(0);
	const hi = new Float32Array(768).fill(1);
	beforeAll(async () => {
		const model = await load("digits16c/cnn-badnets-t4-p10.onnx");
		runner = await MmRunner.create(model, { trials: K, device: "cpu", threads: 1 });
		inf = await OnnxInferenceRunner.create(model, { device: "cpu", threads: 1, penultimate: false });
		n = runner.inputShape.reduce((a, b) => a * b, 1);
		C = runner.numClasses;
	});
	afterAll(async () => {
		await runner.dispose();
		await inf.dispose();
	});

	it("has the model's shape and classes", () => {
		expect(runner.inputShape).toEqual([3, 16, 16]);
		expect(runner.numClasses).toBe(10);
		expect(lo.length).toBe(n);
	});

	it("margin equals logit_target − max over the other classes of the model's logits", async () => {
		const raw = uniform(K * n, 7, -2, 2);
		const out = await runner.run(raw, BigInt64Array.from(targets, BigInt), lo, hi);
		const logits = await inf.logits(toBox(raw, 0, 1), K);
		for (let k = 0; k < K; k++)
			expect(out.margin[k]).toBeCloseTo(marginOf(logits.subarray(k * C, (k + 1) * C), targets[k] as number), 3);
	});

	it("grad = d margin / d x_raw matches float64 central finite differences", async () => {
		const raw = uniform(K * n, 11, -1.5, 1.5);
		const out = await runner.run(raw, BigInt64Array.from(targets, BigInt), lo, hi);
		// per trial: the 6 largest-|grad| coordinates and 6 seeded random ones
		const coords: number[] = [];
		const pick = uniform(K * 6, 12, 0, 1);
		for (let k = 0; k < K; k++) {
			const order = Array.from({ length: n }, (_, i) => i).sort(
				(a, b) => Math.abs(out.grad[k * n + b] as number) - Math.abs(out.grad[k * n + a] as number),
			);
			coords.push(...order.slice(0, 6).map((i) => k * n + i));
			for (let j = 0; j < 6; j++) coords.push(k * n + Math.floor((pick[k * 6 + j] as number) * n));
		}
		const eps = 1e-2;
		const batch = new Float32Array(coords.length * 2 * n);
		coords.forEach((c, q) => {
			const k = Math.floor(c / n);
			for (const [side, d] of [
				[0, eps],
				[1, -eps],
			] as const) {
				const x = raw.slice(k * n, (k + 1) * n);
				x[c - k * n] = (x[c - k * n] as number) + d;
				batch.set(toBox(x, 0, 1), (2 * q + side) * n);
			}
		});
		const logits = await inf.logits(batch, coords.length * 2);
		let ok = 0;
		let err = 0;
		let norm = 0;
		coords.forEach((c, q) => {
			const t = targets[Math.floor(c / n)] as number;
			const plus = marginOf(logits.subarray(2 * q * C, (2 * q + 1) * C), t);
			const minus = marginOf(logits.subarray((2 * q + 1) * C, (2 * q + 2) * C), t);
			const numeric = (plus - minus) / (2 * eps);
			const analytic = out.grad[c] as number;
			if (Math.abs(analytic - numeric) <= 2e-3 + 2e-2 * Math.abs(numeric)) ok++;
			err += (analytic - numeric) ** 2;
			norm += numeric ** 2;
		});
		// a LeakyReLU kink or a runner-up change within ±eps may spoil a coordinate or two
		expect(ok / coords.length).toBeGreaterThanOrEqual(0.9);
		expect(Math.sqrt(err / norm)).toBeLessThan(0.05);
		expect(norm).toBeGreaterThan(0);
	});

	it("is deterministic for a seed, independent of the trials per run, and moved by the seed", async () => {
		const opts = { classes: [4, 1], restarts: 2, steps: 15, seed: 5, lo: 0, hi: 1 };
		const a = await maxMargin(runner, opts);
		const b = await maxMargin(runner, opts);
		expect(b.margins).toEqual(a.margins);
		expect(b.perClass.map((r) => Array.from(r.input))).toEqual(a.perClass.map((r) => Array.from(r.input)));
		// K = 3 runs 4 trials as a full group and a padded one; K = 4 in one group
		const wide = await MmRunner.create(await load("digits16c/cnn-badnets-t4-p10.onnx"), {
			trials: 4,
			device: "cpu",
			threads: 1,
		});
		const w = await maxMargin(wide, opts);
		await wide.dispose();
		w.margins.forEach((m, i) => {
			expect(Math.abs(m - (a.margins[i] as number))).toBeLessThan(1e-3 * Math.abs(m));
		});
		const other = await maxMargin(runner, { ...opts, seed: 6 });
		expect(other.margins).not.toEqual(a.margins);
		for (const r of a.perClass) {
			expect(r.input.every((v) => v >= 0 && v <= 1)).toBe(true);
			expect(r.restartMargins).toHaveLength(2);
			expect(r.margin).toBe(Math.max(...r.restartMargins));
		}
		// the returned input reproduces the returned margin
		const logits = await inf.logits(a.perClass[0]?.input as Float32Array, 1);
		expect(marginOf(logits, 4)).toBeCloseTo(a.margins[0] as number, 2);
	});

	it("refuses a bad box, classes or target with USAGE / DATA_INVALID", async () => {
		await expect(maxMargin(runner, { lo: 1, hi: 0 })).rejects.toMatchObject({ code: "DATA_INVALID" });
		await expect(maxMargin(runner, { lo: [0, 1], hi: 1 })).rejects.toMatchObject({ code: "DATA_INVALID" });
		await expect(maxMargin(runner, { lo: 0, hi: 1, classes: [10] })).rejects.toMatchObject({ code: "USAGE" });
		await expect(runner.run(new Float32Array(K * n), BigInt64Array.from([0n, 1n, 10n]), lo, hi)).rejects.toMatchObject({
			code: "DATA_INVALID",
		});
	});
});

describe("the gamma null of MM-BD's detection rule", () => {
	it("incomplete gamma matches closed forms", () => {
		for (const x of [0.1, 1, 3, 10]) {
			expect(incompleteGamma(1, x).q).toBeCloseTo(Math.exp(-x), 12);
			// P(2, x) = 1 − (1 + x) e^{−x}
			expect(incompleteGamma(2, x).p).toBeCloseTo(1 - (1 + x) * Math.exp(-x), 12);
		}
		expect(incompleteGamma(3, 200).q).toBeGreaterThan(0);
		expect(incompleteGamma(3, 200).q).toBeLessThan(1e-80);
	});

	it("fitGamma recovers shape and scale from a large sample and is null when undetermined", () => {
		// exact quantiles of Gamma(shape 4, scale 2): the sum of 4 exponentials (mean 2), by inversion of a seeded grid
		const u = uniform(4 * 4000, 3, 0, 1);
		const samples = Array.from({ length: 4000 }, (_, i) => {
			let s = 0;
			for (let j = 0; j < 4; j++) s += -2 * Math.log(1 - (u[4 * i + j] as number));
			return s;
		});
		const fit = fitGamma(samples);
		expect(fit?.shape).toBeGreaterThan(3.7);
		expect(fit?.shape).toBeLessThan(4.3);
		expect((fit?.shape as number) * (fit?.scale as number)).toBeCloseTo(
			samples.reduce((a, b) => a + b, 0) / samples.length,
			8,
		);
		expect(fitGamma([3, 3, 3])).toBeNull();
		expect(fitGamma([1])).toBeNull();
		expect(fitGamma([1, -2, 3])).toBeNull();
	});

	it("mmbdDetection: an outlying margin gets a small p, a typical one does not; too few classes give null", () => {
		const null9 = [70, 67, 93, 80, 94, 100, 85, 84, 83];
		const high = mmbdDetection([...null9, 400], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
		expect(high?.cls).toBe(9);
		expect(high?.pValue).toBeLessThan(1e-6);
		const typical = mmbdDetection([...null9, 101]);
		expect(typical?.pValue).toBeGreaterThan(0.05);
		expect(mmbdDetection([5, 9])).toBeNull();
		expect(mmbdDetection([5, 5, 9])).toBeNull();
	});
});

describe("maximum margins on every digits16c fixture", () => {
	// fewer steps and restarts than the defaults keep this file fast; the ranking is the same at the defaults
	const settings = { restarts: 4, steps: 100, seed: 0, lo: 0, hi: 1 };
	const rows: string[] = [];
	afterAll(() => {
		console.log(
			`MM-BD max margins, digits16c (restarts ${settings.restarts}, steps ${settings.steps}; defaults ${MM_DEFAULTS.restarts} × ${MM_DEFAULTS.steps}):\n${rows.join("\n")}`,
		);
	});
	for (const m of fixtureModels("digits16c")) {
		it(`${m.file}: ${m.target === null ? "clean (ratio of largest to median reported)" : `target ${m.target} has the largest margin`}`, async () => {
			const runner = await MmRunner.create(await load(m.file), { trials: 40, device: "cpu", threads: 1 });
			const t0 = performance.now();
			const r = await maxMargin(runner, settings);
			const secs = (performance.now() - t0) / 1000;
			await runner.dispose();
			expect(r.margins.every(Number.isFinite)).toBe(true);
			const top = r.margins.indexOf(Math.max(...r.margins));
			const ratio = Math.max(...r.margins) / median(r.margins);
			const p = r.detection?.pValue;
			rows.push(
				`  ${m.file.padEnd(34)} ${m.target === null ? "clean   " : `target ${m.target}`} top ${top} max/median ${ratio.toFixed(2)} p ${p?.toExponential(1)} ${secs.toFixed(1)}s | ${r.margins.map((v) => v.toFixed(1)).join(" ")}`,
			);
			if (m.target !== null) expect(top).toBe(m.target);
		});
	}
});

it("the digits16c reference data lies in the [0, 1] box the fixtures are searched in", () => {
	const { lo, hi } = minMax(parseNpyFloat32(readFileSync(join(DIGITS, "ref-x.npy"))).data);
	expect(lo).toBeGreaterThanOrEqual(0);
	expect(hi).toBeLessThanOrEqual(1);
});
