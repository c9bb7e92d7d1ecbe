/**
 * The novel-word table (lib/core/monitor/novelty.ts): what it counts, that its memory stays bounded under a flood of
 * distinct words while a frequent word keeps its share, and that its state round-trips.
 */
import { describe, expect, it } from "vitest";
import { StampSet, TERM_CAPACITY, TermTable } from "../../../lib/core/monitor/novelty";
import { foldText, newTokens, type Tokens, tokenize } from "../../../lib/core/monitor/text";
import { rng } from "./traffic";

const tok = (s: string): Tokens => tokenize(foldText(s), newTokens());
const hashOf = (word: string) => tok(word).words[0] as number;
function inputSet(input: string): StampSet {
	const set = new StampSet();
	const t = tok(input);
	for (let i = 0; i < t.count; i++) set.add(t.words[i] as number);
	return set;
}

describe("StampSet", () => {
	it("holds what was added until cleared, whatever the collisions", () => {
		const s = new StampSet();
		const keys = Array.from({ length: 512 }, (_, i) => i * 1024 + 7); // all in one home slot
		for (const k of keys) expect(s.add(k)).toBe(true);
		for (const k of keys) expect(s.add(k)).toBe(false);
		expect(s.has(7 + 1024 * 600)).toBe(false);
		s.clear();
		for (const k of keys) expect(s.has(k)).toBe(false);
	});
});

describe("TermTable", () => {
	it("counts an output word once per record, and not when the request holds it", () => {
		const t = new TermTable(500);
		for (let i = 0; i < 100; i++) t.observe(tok("zeta zeta zeta omega"), inputSet("tell me about omega"));
		expect(t.shareOf(hashOf("zeta"))).toBeCloseTo(1, 5);
		expect(t.shareOf(hashOf("omega"))).toBe(0);
	});

	it("stays within its capacity under a flood of distinct words, and a word in 5% of outputs keeps its share", () => {
		const t = new TermTable(500);
		const rand = rng(3);
		const empty = new StampSet();
		let maxTracked = 0;
		const n = 20_000;
		for (let i = 0; i < n; i++) {
			const words = Array.from({ length: 40 }, () => `w${Math.floor(rand() * 1e9).toString(36)}`);
			const hit = rand() < 0.05;
			if (hit) words.push("beacon");
			t.observe(tok(words.join(" ")), empty);
			maxTracked = Math.max(maxTracked, t.tracked);
		}
		expect(maxTracked).toBeLessThanOrEqual(TERM_CAPACITY);
		// the decayed share (half-life 500 records) of a word drawn at 5%: within sampling noise of it
		expect(t.shareOf(hashOf("beacon"))).toBeGreaterThan(0.035);
		expect(t.shareOf(hashOf("beacon"))).toBeLessThan(0.07);
	});

	it("round-trips through its snapshot: the restored table judges as the original does", () => {
		const a = new TermTable(50);
		const rand = rng(5);
		const empty = new StampSet();
		const opts = {
			weight: 0.1,
			correction: 1,
			armed: true,
			minShare: 0.02,
			factor: 5,
			floor: 0.01,
			accept: () => true,
		};
		const feed = (t: TermTable, i: number) =>
			t.observe(tok(`${i % 7 === 0 ? "novel payload words" : ""} common text w${Math.floor(rand() * 50)}`), empty);
		for (let i = 0; i < 3000; i++) {
			feed(a, i);
			if (i % 50 === 0) a.check(opts);
		}
		const b = TermTable.restore(JSON.parse(JSON.stringify(a.snapshot())), 50);
		expect(b.snapshot()).toEqual(a.snapshot());
		const r1 = rng(9);
		for (let i = 0; i < 500; i++) {
			const text = `w${Math.floor(r1() * 80)} w${Math.floor(r1() * 80)}`;
			a.observe(tok(text), empty);
			b.observe(tok(text), empty);
		}
		expect(b.snapshot()).toEqual(a.snapshot());
	});
});
