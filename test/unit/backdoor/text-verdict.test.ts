/**
 * The text scan's verdict statistics and insertion positions (docs/backdoor.md, "Text classifiers"): the Wilson lower
 * bound a rate is held against, and where stamp() puts a trigger for each position.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../../lib/core/backdoor/rng";
import { oneWord, POSITIONS, positionU, searchTrials, stamp } from "../../../lib/core/backdoor/text-inversion";
import {
	isEvidence,
	normalQuantile,
	otherOrders,
	sourcePairs,
	textsToJudgeOneSource,
	verdictOf,
	verdictScopes,
	wilsonLower,
} from "../../../lib/core/backdoor/text-scan";
import { defaultPolicy } from "../../../lib/core/policy";

describe("text verdict statistics", () => {
	it("normal quantiles", () => {
		expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
		expect(normalQuantile(0.9)).toBeCloseTo(1.2815516, 6);
		expect(normalQuantile(0.95)).toBeCloseTo(1.6448536, 6);
		expect(normalQuantile(0.01)).toBeCloseTo(-2.3263479, 6);
		expect(normalQuantile(0.999)).toBeCloseTo(3.0902323, 6);
	});

	it("the Wilson lower bound: below the share, closer with more texts, zero without texts", () => {
		// 17 of 17 at 0.9: n / (n + z²)
		expect(wilsonLower(17, 17, 0.9)).toBeCloseTo(17 / (17 + 1.2815516 ** 2), 6);
		expect(wilsonLower(4, 4, 0.9)).toBeLessThan(0.75);
		expect(wilsonLower(0, 10, 0.9)).toBe(0);
		expect(wilsonLower(0, 0, 0.9)).toBe(0);
		// the same share on more texts has a higher bound
		const small = wilsonLower(24, 30, 0.9);
		const large = wilsonLower(240, 300, 0.9);
		expect(small).toBeLessThan(large);
		expect(large).toBeLessThan(0.8);
		// a reference value: 8 of 10 at 95% (one-sided z = 1.645)
		expect(wilsonLower(8, 10, 0.95)).toBeCloseTo(0.5408, 3);
		// a higher level, a lower bound
		expect(wilsonLower(60, 68, 0.95)).toBeLessThan(wilsonLower(60, 68, 0.9));
	});

	it("a share of exactly 0.80 on a small pool does not clear a 0.8 threshold", () => {
		expect(wilsonLower(24, 30, 0.9)).toBeLessThan(0.8);
		expect(wilsonLower(55, 68, 0.9)).toBeLessThan(0.8);
	});
});

describe("what a reference set can show", () => {
	it("names the held-out texts a source label needs to be judged alone (Bonferroni over the sources)", () => {
		const p = defaultPolicy().backdoor.text;
		// at 20 of 20 with 4 sources the bound is 0.84: a source-specific backdoor could never pass there
		expect(wilsonLower(20, 20, 1 - 0.1 / 4)).toBeLessThan(p.asrThreshold);
		expect(textsToJudgeOneSource(p, 4)).toBe(35);
		expect(wilsonLower(35, 35, 1 - 0.1 / 4)).toBeGreaterThanOrEqual(p.asrThreshold);
		expect(wilsonLower(34, 34, 1 - 0.1 / 4)).toBeLessThan(p.asrThreshold);
		expect(textsToJudgeOneSource(p, 1)).toBe(15);
	});
});

describe("a label's evidence (barred as a trigger)", () => {
	it("a common word of the label, or a label-specific one; not a word rare everywhere or as common outside", () => {
		const p = defaultPolicy().backdoor.text;
		expect(isEvidence(0.8, 0.8, p)).toBe(true); // "documentation" for doc: in 20% of its texts
		expect(isEvidence(0.113, 0, p)).toBe(true); // "python3" for python (red team, 160 texts per label)
		expect(isEvidence(0.063, 0.013, p)).toBe(true); // "bindings": 5 times as often in python
		expect(isEvidence(0, 0, p)).toBe(false); // a rare-word trigger ("cf")
		expect(isEvidence(0.1, 0.08, p)).toBe(false); // a common word as a trigger ("however"): as frequent outside
		expect(isEvidence(0.04, 0, p)).toBe(false); // below minSpecificRate: a word or two of the sample
	});
});

describe("insertion positions", () => {
	const seq = [2, 10, 11, 12, 3];
	it("start: right after [CLS]; end: right before [SEP]", () => {
		const rng = new Rng(1);
		expect(stamp(seq, [99], positionU("start", rng), 16).ids).toEqual([2, 99, 10, 11, 12, 3]);
		expect(stamp(seq, [99], positionU("end", rng), 16).ids).toEqual([2, 10, 11, 12, 99, 3]);
		expect(stamp([2, 3], [99, 98], positionU("end", rng), 16).ids).toEqual([2, 99, 98, 3]);
	});
	it("random draws from the rng; the fixed ones do not", () => {
		const a = new Rng(3);
		const b = new Rng(3);
		expect(positionU("random", a)).toBe(b.uniform());
		for (const p of POSITIONS.filter((q) => q !== "random")) positionU(p, a);
		expect(a.uniform()).toBe(b.uniform());
	});
});

describe("one-word triggers (judged at fixed positions too)", () => {
	it("a word-start token and continuation pieces", () => {
		const pieces = new Set([130, 137]);
		expect(oneWord([66], pieces)).toBe(true);
		expect(oneWord([66, 130, 137], pieces)).toBe(true);
		expect(oneWord([66, 67], pieces)).toBe(false);
		expect(oneWord([66, 130, 67], pieces)).toBe(false);
	});
});

describe("a multi-word trigger's other orders (a phrase found in the wrong order)", () => {
	it("every other ordering once, none for one word", () => {
		expect(otherOrders([1, 2, 3]).map((o) => o.join(""))).toEqual(["213", "312", "132", "231", "321"]);
		// words are units: a word's pieces stay together
		expect(otherOrders([[7], [8, 130]])).toEqual([[[8, 130], [7]]]);
		expect(otherOrders([5])).toEqual([]);
	});
});

describe("the search's (label, source label) pair trials", () => {
	const p = defaultPolicy().backdoor.text;
	// three labels; held-out texts: label 0 ×40, label 1 ×40, label 2 ×10 (correctly classified, by index)
	const heldLabels = [...new Array(40).fill(0), ...new Array(40).fill(1), ...new Array(10).fill(2)];
	const idx = (y: number) => heldLabels.flatMap((l, i) => (l === y ? [i] : []));
	const heldPools = [0, 1, 2].map((k) => [0, 1, 2].filter((y) => y !== k).flatMap(idx));

	it("only for a source label with held-out texts enough to be judged alone", () => {
		expect(textsToJudgeOneSource(p, 2)).toBeLessThanOrEqual(40);
		expect(textsToJudgeOneSource(p, 2)).toBeGreaterThan(10);
		// label 2 (10 texts) can never be judged alone: no pair has it as the source
		expect(sourcePairs(p, heldPools, heldLabels)).toEqual({
			pairs: [
				[0, 1],
				[1, 0],
				[2, 0],
				[2, 1],
			],
			skipped: 0,
		});
	});

	it("at most maxSourcePairs, the rest counted (the report's limits name them); 0 turns them off", () => {
		expect(sourcePairs({ ...p, maxSourcePairs: 3 }, heldPools, heldLabels).skipped).toBe(1);
		expect(sourcePairs({ ...p, maxSourcePairs: 0 }, heldPools, heldLabels)).toEqual({ pairs: [], skipped: 4 });
	});

	it("each label's groups first, then one trial per pair drawing on its source label's texts only", () => {
		const texts = { seqs: heldLabels.map(() => [2, 3]), labels: heldLabels };
		const trials = searchTrials(texts, heldPools, [[2, 1]]);
		expect(trials.map((t) => [t.label, t.stamp, t.source])).toEqual([
			[0, "anywhere", null],
			[1, "anywhere", null],
			[2, "anywhere", null],
			[0, "start", null],
			[1, "start", null],
			[2, "start", null],
			[2, "anywhere", 1],
		]);
		expect(trials[6]?.pool).toEqual(idx(1));
	});
});

describe("a trigger judged on one source label alone", () => {
	const p = defaultPolicy().backdoor.text;
	// held-out texts of the other labels: 40 of label 1 (the source), 40 each of labels 2 and 3; diluted pool alike
	const labels = [...new Array(40).fill(1), ...new Array(40).fill(2), ...new Array(40).fill(3)];
	const pool = labels.map((_, i) => i);
	const scopes = verdictScopes([pool, pool], [labels, labels], p);
	/** hits: every text of label 1, and `off` of each of the other two labels' 40 */
	const hits = (off: number) => labels.map((y, i) => y === 1 || i % 40 < off);
	const judge = (off: number, absent = true) =>
		verdictOf(
			[{ position: "random", held: hits(off), diluted: hits(off), scopes, allScopes: scopes }],
			p,
			true,
			absent,
		);

	it("is flagged from its source when it leaves the other sources alone (a source-specific backdoor)", () => {
		expect(scopes.map((s) => s.source)).toEqual([null, 1, 2, 3]);
		const f = judge(0);
		expect(f).toMatchObject({ flagged: true, sources: [1], held: 1, offSource: 0 });
		expect(judge(Math.floor(p.maxOffSourceRate * 40)).flagged).toBe(true);
	});

	it("is not when it also pulls the other sources (the label's evidence flips the easily swayed one entirely)", () => {
		const f = judge(Math.ceil(0.3 * 40));
		expect(f.flagged).toBe(false);
		expect(f.offSource).toBeCloseTo(0.3, 1);
		expect(judge(0, false).flagged).toBe(false); // in the target's own texts: never judged from one source
	});

	it("is flagged with every source together when it flips them all, whatever one source alone shows", () => {
		expect(judge(40)).toMatchObject({ flagged: true, sources: null, offSource: null });
	});

	it("a backdoor from two source labels: neither counts as the other's other source", () => {
		// labels 1 and 2 flipped entirely, label 3 left alone
		const two = labels.map((y) => y === 1 || y === 2);
		const f = verdictOf([{ position: "random", held: two, diluted: two, scopes, allScopes: scopes }], p, true, true);
		expect(f).toMatchObject({ flagged: true, sources: [1, 2], offSource: 0 });
	});

	it("judged from its source alone (a pair trial's find), the other sources still count against it", () => {
		const alone = scopes.filter((s) => s.source === 1);
		const only = (off: number) =>
			verdictOf(
				[{ position: "random", held: hits(off), diluted: hits(off), scopes: alone, allScopes: scopes }],
				p,
				true,
				true,
			);
		expect(only(0)).toMatchObject({ flagged: true, sources: [1], offSource: 0 });
		// it flips every source: no flag from one source alone, and no every-source judgement to flag it either
		expect(only(40)).toMatchObject({ flagged: false, sources: [1], offSource: 1 });
	});
});
