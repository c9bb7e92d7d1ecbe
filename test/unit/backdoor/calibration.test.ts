/**
 * The calibrated verdict (calibration.ts, calibration-fit.ts): its statistics on hand-made
 * evidence, the normal tail, and — on the scanned population of test/fixtures/backdoor-wide —
 * that the committed table is what the fit split gives, and the detection and false-alarm
 * rates on the test split, models the fit never saw (docs/backdoor.md, "Calibrated verdict").
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	type Calibration,
	calibratedScanProblem,
	calibratedSearch,
	calibrationFor,
	checkCalibratedData,
	checkInsidePopulation,
	checkReferenceAccuracy,
	classStatistics,
	fitCalibration,
	judgeModel,
	MIN_REFERENCE_PER_CLASS,
	type ModelEvidence,
	minReferenceAccuracy,
	modelShift,
	normalUpperTail,
	SHIFT_LIMIT,
	sameSearch,
	scoreModel,
	usesArea,
} from "../../../lib/core/backdoor/calibration";
import {
	CALIBRATED_SETS,
	DEFAULT_SETS,
	fitAll,
	judgePopulation,
	rates,
} from "../../../lib/core/backdoor/calibration-fit";
import { CALIBRATIONS } from "../../../lib/core/backdoor/calibration-table";
import { FtguardError } from "../../../lib/core/errors";
import { defaultBackdoorPolicy } from "../../../lib/core/policy/backdoor";
import { loadPopulation, POPULATION_DIR, populationSearch } from "../../helpers/backdoor-population";

describe("normalUpperTail", () => {
	it("is the standard normal's upper tail", () => {
		expect(normalUpperTail(0)).toBeCloseTo(0.5, 12);
		expect(normalUpperTail(1.6448536)).toBeCloseTo(0.05, 7);
		expect(normalUpperTail(3.0902323)).toBeCloseTo(0.001, 8);
		expect(normalUpperTail(-1.959964)).toBeCloseTo(0.975, 6);
		expect(normalUpperTail(8)).toBeGreaterThan(0);
		expect(normalUpperTail(8)).toBeLessThan(1e-14);
	});
});

const flat = (C: number, l1: number, margin: number): ModelEvidence => ({
	numClasses: C,
	maskSize: 256,
	ncL1: Array(C).fill(l1),
	pairL1: Array.from({ length: C }, (_, t) => Array.from({ length: C }, (_, s) => (s === t ? null : l1))),
	margins: Array(C).fill(margin),
});

describe("classStatistics", () => {
	it("orients every statistic so that a smaller trigger or a larger margin is larger", () => {
		const e = flat(5, 20, 50);
		(e.ncL1 as number[])[2] = 5;
		((e.pairL1 as Array<Array<number | null>>)[3] as Array<number | null>)[1] = 4;
		(e.margins as number[])[4] = 200;
		const s = classStatistics(e);
		expect(s[2]?.nc_area).toBeCloseTo(-Math.log(5 / 256), 10);
		expect(s[2]?.nc_relative).toBeCloseTo(-Math.log(5 / 20), 10);
		expect(s[0]?.nc_relative).toBeCloseTo(0, 10);
		// a source-specific pair: only its target's pair statistics move
		expect(s[3]?.pair_relative).toBeCloseTo(-Math.log(4 / 20), 10);
		expect(s[0]?.pair_relative).toBeCloseTo(0, 10);
		expect(s[4]?.mm_relative).toBeCloseTo(Math.log(4), 10);
		expect(s[0]?.mm_relative).toBeCloseTo(0, 10);
		// a more localised trigger than the model's others: larger
		const c = classStatistics({ ...e, ncConcentration: [0.4, 0.4, 0.8, 0.4, 0.2] });
		expect(c[2]?.nc_concentration).toBeCloseTo(Math.log(2), 10);
		expect(c[4]?.nc_concentration).toBeCloseTo(Math.log(0.5), 10);
		expect(s[0]?.nc_concentration).toBeUndefined();
		expect(() => classStatistics({ ...e, ncConcentration: [0.4, 0.4] })).toThrow(/concentrations do not cover/);
		expect(() => classStatistics({ ...e, ncConcentration: [0.4, 0.4, Number.NaN, 0.4, 0.2] })).toThrow(
			/not a finite number/,
		);
	});
	it("floors a non-positive margin and a zero L1 instead of producing infinities", () => {
		const e = flat(3, 10, 5);
		(e.margins as number[])[0] = -3;
		(e.ncL1 as number[])[1] = 0;
		for (const c of classStatistics(e)) for (const v of Object.values(c)) expect(Number.isFinite(v)).toBe(true);
	});
	it("refuses evidence that does not cover every class", () => {
		expect(() => classStatistics({ ...flat(3, 10, 5), ncL1: [1, 2] })).toThrow(FtguardError);
		expect(() => classStatistics({ ...flat(3, 10, 5), margins: [1] })).toThrow(FtguardError);
	});
});

/** A clean population with natural spread (seeded), to fit on. */
function cleanPopulation(n: number): ModelEvidence[] {
	let seed = 7;
	const rnd = () => {
		seed = (seed * 1103515245 + 12345) % 2 ** 31;
		return seed / 2 ** 31;
	};
	return Array.from({ length: n }, (_, m) => {
		const C = [2, 3, 5, 10][m % 4] as number;
		const e = flat(C, 20, 50);
		e.ncL1 = e.ncL1.map(() => 20 * Math.exp(0.3 * (rnd() - 0.5)));
		e.margins = (e.margins as number[]).map(() => 50 * Math.exp(0.3 * (rnd() - 0.5)));
		e.pairL1 = (e.pairL1 as Array<Array<number | null>>).map((row) =>
			row.map((v) => (v === null ? null : 15 * Math.exp(0.4 * (rnd() - 0.5)))),
		);
		return e;
	});
}

describe("fit and score", () => {
	const cal: Calibration = fitCalibration(
		cleanPopulation(40),
		CALIBRATED_SETS["nc+pairs+mm"] ?? [],
		"synthetic",
		calibratedSearch(defaultBackdoorPolicy()),
	);

	it("flags nothing on a clean model and every target of a two-target model", () => {
		expect(scoreModel(flat(10, 20, 50), cal, 0.01).some((c) => c.flagged)).toBe(false);
		const two = flat(10, 20, 50);
		for (const t of [3, 7]) {
			(two.ncL1 as number[])[t] = 4;
			(two.margins as number[])[t] = 300;
			(two.pairL1 as Array<Array<number | null>>)[t] = (two.pairL1?.[t] ?? []).map((v) => (v === null ? null : 4));
		}
		expect(
			scoreModel(two, cal, 0.01)
				.filter((c) => c.flagged)
				.map((c) => c.cls),
		).toEqual([3, 7]);
	});

	it("flags a source-specific pair (Neural Cleanse over every source silent) by the pair family alone", () => {
		const src = flat(10, 20, 50);
		((src.pairL1 as Array<Array<number | null>>)[6] as Array<number | null>)[2] = 3;
		const s = scoreModel(src, cal, 0.01);
		expect(s[6]?.flagged).toBe(true);
		expect(s[6]?.strongest).toBe("pairs");
		expect(s.filter((c) => c.flagged).map((c) => c.cls)).toEqual([6]);
	});

	it("judges a binary model on the statistics it has (no pairs) and a model lacking a detector's figures is refused", () => {
		const bin = flat(2, 20, 50);
		(bin.ncL1 as number[])[0] = 2;
		(bin.margins as number[])[0] = 500;
		const s = scoreModel(bin, cal, 0.01);
		expect(Object.keys(s[0]?.z ?? {})).not.toContain("pair_area");
		expect(s[0]?.flagged).toBe(true);
		const { margins: _, ...noMargins } = flat(5, 20, 50);
		expect(() => scoreModel(noMargins, cal, 0.01)).toThrow(/no class has the statistics of max_margin/);
	});

	it("refuses a target the pair budget skipped (red team: maxPairs 9 hid a source-specific target), and a NaN figure", () => {
		const e = flat(10, 20, 50);
		(e.pairL1 as Array<Array<number | null>>)[4] = Array(10).fill(null);
		expect(() => scoreModel(e, cal, 0.01)).toThrow(/class 4 lacks the statistics of pairs/);
		(e.pairL1 as Array<Array<number | null>>)[4] = (flat(10, 20, 50).pairL1 as Array<Array<number | null>>)[4] ?? [];
		expect(scoreModel(e, cal, 0.01)).toHaveLength(10);
		(e.ncL1 as number[])[2] = Number.NaN;
		expect(() => scoreModel(e, cal, 0.01)).toThrow(/not a finite number/);
	});
});

describe("reference data the calibrated verdict can judge", () => {
	it("needs the model to classify its reference data: accuracy halfway from chance to perfect, every class above chance", () => {
		const per = (v: number, n = 10) => new Array<number>(n).fill(v);
		expect(minReferenceAccuracy(2)).toBe(0.75);
		expect(minReferenceAccuracy(10)).toBeCloseTo(0.55, 12);
		expect(() => checkReferenceAccuracy(0.85, per(0.85), 10)).not.toThrow();
		expect(() => checkReferenceAccuracy(0.1, per(0.1), 10)).toThrow(
			/accuracy 0\.100 \(chance 0\.100; .* needs 0\.550\)/,
		);
		expect(() => checkReferenceAccuracy(Number.NaN, per(0.9, 3), 3)).toThrow(FtguardError);
		// red team: classes 3 and 5 swapped, 0.775 overall, read as a backdoor between them at p 5e-63
		const swapped = per(0.97).map((v, c) => (c === 3 || c === 5 ? 0 : v));
		let err: unknown;
		try {
			checkReferenceAccuracy(0.775, swapped, 10);
		} catch (e) {
			err = e;
		}
		expect((err as FtguardError).code).toBe("DATA_INVALID");
		expect((err as FtguardError).message).toMatch(
			/reference inputs of class 3, 5 at accuracy 0\.000, 0\.000 \(chance 0\.100\)/,
		);
		expect((err as FtguardError).details).toMatchObject({ accuracy: 0.775, chance: 0.1, per_class: swapped });
		// a weak class above chance is no reason to refuse
		expect(() =>
			checkReferenceAccuracy(
				0.9,
				per(0.9).map((v, c) => (c === 0 ? 0.2 : v)),
				10,
			),
		).not.toThrow();
	});

	it("needs MIN_REFERENCE_PER_CLASS inputs of every class (red team: one input of a class made a clean model suspect)", () => {
		const labels = (counts: number[]) => BigInt64Array.from(counts.flatMap((n, c) => Array(n).fill(BigInt(c))));
		expect(MIN_REFERENCE_PER_CLASS).toBe(10);
		expect(() => checkCalibratedData(labels([10, 10, 10]), 3)).not.toThrow();
		expect(() => checkCalibratedData(labels([1, 20, 20]), 3)).toThrow(/at least 10 reference inputs .*class 0: 1/);
		expect(() => checkCalibratedData(labels([20, 20]), 3)).toThrow(/class 2: 0/);
		try {
			checkCalibratedData(labels([9, 9]), 2);
		} catch (e) {
			expect((e as FtguardError).code).toBe("DATA_INVALID");
		}
	});
});

describe("the committed calibration on the scanned population (test/fixtures/backdoor-wide)", () => {
	const population = loadPopulation();
	const digits = loadPopulation(
		join(POPULATION_DIR, "../backdoor/calibrated-scan-results.json"),
		join(POPULATION_DIR, "../backdoor/calibrated-manifest.json"),
	);
	// as the policy's calibrated rule judges: the table for the input size, "could not check" outside the population
	const judged = (models: typeof population) => judgePopulation(models, CALIBRATIONS, 0.01);

	it("is what the fit split's clean models give, for the search the policy's defaults run", () => {
		const cals = fitAll(population, "test/fixtures/backdoor-wide (fit split, clean)", populationSearch());
		expect(CALIBRATIONS).toEqual(DEFAULT_SETS.map((k) => cals[k]));
		expect(CALIBRATIONS.map((c) => c.fitted.models)).toEqual([28, 28]);
		for (const c of CALIBRATIONS)
			expect(sameSearch(c.fitted.search, calibratedSearch(defaultBackdoorPolicy()))).toBe(true);
	});

	it("refuses a model with more classes than the pair budget covers (C(C − 1) > 400: C > 20)", () => {
		const search = calibratedSearch(defaultBackdoorPolicy());
		const cal = CALIBRATIONS[0] as Calibration;
		const all = new Set(["nc", "pairs", "mm"]);
		expect(calibratedScanProblem(all, 20, search, [cal])).toBeUndefined();
		expect(calibratedScanProblem(all, 21, search, [cal])).toMatch(
			/21 classes need 420 pairs, more than its budget of 400/,
		);
		// a binary model has no pair search to need; MM-BD it needs (the localised_margin family)
		expect(calibratedScanProblem(new Set(["nc", "mm"]), 2, search, [cal])).toBeUndefined();
		expect(calibratedScanProblem(new Set(["nc"]), 2, search, [cal])).toMatch(/missing mm/);
	});

	it("picks the area statistics only at the input size they were fitted on", () => {
		expect(calibrationFor(256, CALIBRATIONS)).toBe(CALIBRATIONS[0]);
		expect(usesArea(CALIBRATIONS[0] as Calibration)).toBe(true);
		for (const size of [64, 1024, 224 * 224]) {
			expect(calibrationFor(size, CALIBRATIONS)).toBe(CALIBRATIONS[1]);
			expect(usesArea(CALIBRATIONS[1] as Calibration)).toBe(false);
		}
	});

	// the rates docs/backdoor.md states (npm run calibrate:backdoor -- --fit prints them): a change to the
	// statistics, the fit or the search that moves any of them fails here
	it("test split (models the fit never saw): no clean model flagged, the 10 patch-embedding ones could not be checked; patch, two-target, binary caught", () => {
		const r = rates(judged(population).filter((o) => o.split === "test"));
		expect(r).toEqual({
			"test/multi": { models: 3, correct: 1, uncheckable: 2 },
			"test/clean": { models: 26, correct: 16, uncheckable: 10 },
			"test/patch": { models: 3, correct: 3, uncheckable: 0 },
			"test/blend": { models: 3, correct: 2, uncheckable: 1 },
			"test/lowamp": { models: 2, correct: 1, uncheckable: 1 },
			"test/two-target": { models: 3, correct: 2, uncheckable: 0 },
			"test/binary": { models: 2, correct: 2, uncheckable: 0 },
			"test/source": { models: 2, correct: 1, uncheckable: 0 },
			"test/large": { models: 2, correct: 0, uncheckable: 0 },
		});
	});

	it("outside the population (every class's trigger small) Neural Cleanse's own rule names classes, else could not check; never clean", () => {
		const shift = (m: (typeof population)[number]) => modelShift(m.evidence, CALIBRATIONS[0] as Calibration) ?? 0;
		const patchln = population.filter((m) => m.arch === "patchln");
		expect(patchln).toHaveLength(13);
		// every patch-embedding + LayerNorm model, clean or not, is beyond the limit; no clean model of another
		// architecture is, on either split
		for (const m of patchln) expect(shift(m)).toBeGreaterThan(SHIFT_LIMIT);
		for (const m of population.filter((x) => x.arch !== "patchln" && x.kind === "clean"))
			expect(shift(m)).toBeLessThan(SHIFT_LIMIT);
		// backdoors that shrink every class's trigger are outside too: named by Neural Cleanse's own rule, or quarantined
		// (exit 2), never passed
		const outside = judged(population).filter((o) => o.outside && !o.file.includes("patchln"));
		expect(outside.map((o) => o.file).sort()).toEqual([
			"c10/resnet-lowamp-t5-p10.onnx",
			"c3/resnet-lowamp-t2-p10.onnx",
			"c3/resnet-multi-t0+2-p12.onnx",
			"c5/dwsep-multi-t0+1+3+4-p16.onnx",
		]);
		expect(Object.fromEntries(outside.map((o) => [o.file, o.flagged]))).toEqual({
			"c10/resnet-lowamp-t5-p10.onnx": [5],
			"c3/resnet-lowamp-t2-p10.onnx": [],
			"c3/resnet-multi-t0+2-p12.onnx": [],
			"c5/dwsep-multi-t0+1+3+4-p16.onnx": [],
		});
		// the patchln models: no clean one flagged (could not check, all 10), the patch target named
		const pl = judged(patchln);
		expect(pl.filter((o) => o.kind === "clean").map((o) => o.flagged.length)).toEqual(new Array(10).fill(0));
		expect(Object.fromEntries(pl.filter((o) => o.kind !== "clean").map((o) => [o.file, o.flagged]))).toEqual({
			"c10/patchln-patch-t4-p8.onnx": [4],
			"c5/patchln-blend-t1-p10.onnx": [],
			"c5/patchln-two-target-t1+4-p10.onnx": [1],
		});
		// without the check the area table flags 9 of the 10 clean patchln models (most of their classes)
		const area = judgePopulation(patchln, CALIBRATIONS[0] as Calibration, 0.01);
		expect(area.filter((o) => o.kind === "clean" && o.flagged.length > 0)).toHaveLength(9);
		// the refusal names what the relative statistics would flag, and says why no verdict holds
		const ncRule = defaultBackdoorPolicy().neuralCleanse;
		const named = population.find((m) => m.file === "c10/resnet-lowamp-t5-p10.onnx");
		const jn = judgeModel(named?.evidence as ModelEvidence, CALIBRATIONS, 0.01, ncRule);
		expect(jn.ncFlagged).toEqual([5]);
		expect(() => checkInsidePopulation(jn, 0.01)).not.toThrow();
		const lowamp = population.find((m) => m.file === "c3/resnet-lowamp-t2-p10.onnx");
		const j = judgeModel(lowamp?.evidence as ModelEvidence, CALIBRATIONS, 0.01, ncRule);
		expect(j.calibration).toBe(CALIBRATIONS[1]);
		let err: unknown;
		try {
			checkInsidePopulation(j, 0.01);
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(FtguardError);
		expect((err as FtguardError).code).toBe("OUT_OF_CALIBRATION");
		expect((err as FtguardError).message).toMatch(
			/does not hold for this model: .*own rule flags no class.*would name class 1 \(p 0\.00012, pairs\), class 2 /,
		);
		// with no table without area statistics to fall back on, an outside model is refused, never judged on area
		expect(() => judgeModel(lowamp?.evidence as ModelEvidence, [CALIBRATIONS[0] as Calibration], 0.01, ncRule)).toThrow(
			expect.objectContaining({ code: "OUT_OF_CALIBRATION" }),
		);
		const inside = judgeModel(population[0]?.evidence as ModelEvidence, CALIBRATIONS, 0.01, ncRule);
		expect(inside.outside).toBeUndefined();
		expect(() => checkInsidePopulation(inside, 0.01)).not.toThrow();
	});

	it("several targets: the second stage names 3 more targets of the 3-of-5 and 4-of-5 models (every target of 2 of 5 models without it)", () => {
		const multi = population.filter((m) => m.kind === "multi");
		const cal = calibrationFor(256, CALIBRATIONS);
		const named = (m: (typeof multi)[number]) =>
			scoreModel(m.evidence, cal, 0.01)
				.filter((c) => c.flagged)
				.map((c) => `${c.cls}${c.stage === 2 ? "+" : ""}`);
		expect(Object.fromEntries(multi.map((m) => [m.file, named(m)]))).toEqual({
			// 3 of 5 and 4 of 5 classes targets: the model's median is a target's, so the relative statistics hid all
			// but one; their nc_area (against clean models) names the rest
			"c5/cnn-multi-t0+2+4-p15.onnx": ["0+", "4"],
			"c5/dwsep-multi-t0+1+3+4-p16.onnx": ["0+", "1", "3+"],
			"c10/cnn-multi-t0+3+5+8-p16.onnx": ["0", "3", "5", "8"],
			"c10/resnet-multi-t1+4+6+9-p16.onnx": ["1", "4", "6", "9"],
			// 2 of 3 classes: not flagged at all (smallest p 0.012 against 0.0033), so no second stage
			"c3/resnet-multi-t0+2-p12.onnx": [],
		});
	});

	it("the second stage never flags a clean model the first left alone, nor a binary model's other class", () => {
		for (const m of population) {
			const scores = scoreModel(m.evidence, calibrationFor(m.evidence.maskSize, CALIBRATIONS), 0.01);
			if (!scores.some((c) => c.flagged && c.stage === 1)) expect(scores.some((c) => c.flagged)).toBe(false);
			if (m.evidence.numClasses === 2) expect(scores.every((c) => c.stage === 1)).toBe(true);
		}
		// a table without nc_area (another input size) has no second stage, and no reference when most classes are
		// targets: the 4-of-5 model passes there (the limit docs/backdoor.md states)
		const dw = population.find((m) => m.file === "c5/dwsep-multi-t0+1+3+4-p16.onnx");
		const rel = scoreModel(dw?.evidence as ModelEvidence, CALIBRATIONS[1] as Calibration, 0.01);
		expect(rel.filter((c) => c.flagged).map((c) => c.cls)).toEqual([]);
	});

	it("the mask's concentration is reported, not judged: as a third family it catches one large trigger on each split for one more clean model flagged", () => {
		const cals = fitAll(population, "test/fixtures/backdoor-wide (fit split, clean)", populationSearch());
		const out = judgePopulation(population, cals["nc+pairs+conc"] as Calibration, 0.01);
		const r = rates(out);
		expect(r["test/large"]).toEqual({ models: 2, correct: 1, uncheckable: 0 });
		expect(r["fit/large"]).toEqual({ models: 2, correct: 1, uncheckable: 0 });
		expect(rates(out.filter((o) => !o.file.includes("patchln")))["test/clean"]).toEqual({
			models: 16,
			correct: 14,
			uncheckable: 0,
		});
		expect(r["fit/clean"]).toEqual({ models: 28, correct: 26, uncheckable: 0 });
		// the large trigger it catches (a 9×9 block on the 20-class model) and the clean class it flags (the
		// depthwise model's naturally easy class, whose small trigger is compact too)
		expect(out.filter((o) => o.kind === "large" && o.correct).map((o) => o.file)).toEqual([
			"c10/silu-large-t8-p6.onnx",
			"c20/dwsep-large-t6-p6.onnx",
		]);
		expect(
			out
				.filter((o) => o.split === "test" && o.kind === "clean" && !o.correct && !o.file.includes("patchln"))
				.map((o) => o.file),
		).toEqual(["c5-easy/dwsep-clean-s1.onnx", "c3/dwsep-clean-s1.onnx"]);
	});

	it("fit split: 2 of its 28 clean models flagged (an easy class, a binary ResNet), every true target found where caught", () => {
		const out = judged(population).filter((o) => o.split === "fit");
		expect(out.filter((o) => o.kind === "clean" && !o.correct).map((o) => o.file)).toEqual([
			"c5-easy/cnn-clean-s1.onnx",
			"c2b/resnet-clean-s1.onnx",
		]);
		// a backdoored model flagged at all is flagged for every target (the several-target family aside: its own test)
		for (const o of out.filter((x) => x.kind !== "clean" && x.kind !== "multi" && x.flagged.length > 0))
			expect(o.found).toEqual(o.targets);
	});

	it("the digits fixtures, another data set and the 8×8 resolution never fitted on: every backdoor caught, no clean model flagged", () => {
		const out = judged(digits);
		expect(rates(out)).toEqual({
			"heldout/clean": { models: 12, correct: 12, uncheckable: 0 },
			"heldout/badnets": { models: 8, correct: 8, uncheckable: 0 },
			"heldout/blend": { models: 4, correct: 4, uncheckable: 0 },
		});
		expect(out.filter((o) => !o.correct).map((o) => o.file)).toEqual([]);
	});
});
