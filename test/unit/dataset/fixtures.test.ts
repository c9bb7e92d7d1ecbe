/**
 * The scanner on the committed fixtures (test/fixtures/dataset/make_datasets.py), every detector on: recall per
 * poison kind, label flips and duplicates, the false-positive rate, and nothing at all on the clean controls. The
 * figures are printed as a table so the evidence note can quote them. (The trigger miner alone:
 * fixtures-triggers.test.ts, a file of its own so that the two run on both cores.)
 */
import { afterAll, describe, expect, it } from "vitest";
import { type DatasetReport, scanDataset } from "../../../lib/core/dataset/scan";
import {
	CLASSIFY_CLEAN,
	CLASSIFY_POISONED,
	CLEAN_FIXTURES,
	fixturePath,
	POISON_KINDS,
	POISONED_FIXTURES,
	share,
	type Truth,
	truthOf,
} from "../../helpers/dataset";

/** Every record the truth file names: poisoned, both sides of a flip, both copies of a duplicate. */
function named(t: Truth): Set<number> {
	const out = new Set<number>();
	for (const ids of Object.values(t.poisoned)) for (const i of ids) out.add(i);
	for (const f of t.flips) for (const i of [...f.flipped, ...f.majority]) out.add(i);
	for (const d of t.duplicates) for (const i of d) out.add(i);
	return out;
}

/** A report's own consistency: records in range, flagged_records = the union of the findings' records, sorted. */
function expectConsistent(r: DatasetReport, n: number): void {
	expect(r.records).toBe(n);
	expect(r.lineage.records).toBe(n);
	const union = new Set<number>();
	for (const f of r.findings) {
		expect(f.records.length).toBeGreaterThan(0);
		expect(f.message).not.toBe("");
		for (const i of f.records) union.add(i);
	}
	expect([...union].filter((i) => !(Number.isInteger(i) && i >= 0 && i < n))).toEqual([]);
	expect(r.flagged_records).toEqual([...union].sort((a, b) => a - b));
}

const table: string[] = [];

afterAll(() => {
	if (table.length > 0) console.log(`dataset fixtures, every detector:\n${table.join("\n")}`);
});

describe("scanDataset on the fixtures", () => {
	it.each(CLEAN_FIXTURES)("%s: no finding at all", async (name) => {
		const t = truthOf(name);
		const r = await scanDataset({ files: [fixturePath(name)] });
		expectConsistent(r, t.records);
		table.push(`${name.padEnd(26)} findings ${r.findings.length}  FP ${r.flagged_records.length}/${t.records}`);
		expect(r.findings.map((f) => `${f.id}: ${f.message}`)).toEqual([]);
		expect(r.flagged_records).toEqual([]);
		expect(r.ok).toBe(true);
		expect(Object.values(r.formats)).toEqual([t.format]);
	});

	it.each(POISONED_FIXTURES)(
		"%s: recall ≥ 0.95 per kind, flips and duplicates; false-positive rate ≤ 0.005",
		async (name) => {
			const t = truthOf(name);
			expect(Object.keys(t.poisoned).sort()).toEqual([...POISON_KINDS].sort());
			const r = await scanDataset({ files: [fixturePath(name)] });
			expectConsistent(r, t.records);
			expect(r.ok).toBe(false);
			expect(Object.values(r.formats)).toEqual([t.format]);
			const flagged = new Set(r.flagged_records);
			const cells: string[] = [];
			const missed: string[] = [];
			for (const kind of POISON_KINDS) {
				const s = share(t.poisoned[kind] ?? [], flagged);
				cells.push(`${kind} ${s.hit}/${s.of}`);
				if (s.rate < 0.95) missed.push(`${kind}: ${s.hit}/${s.of}`);
			}
			const flips = share(
				t.flips.flatMap((f) => f.flipped),
				flagged,
			);
			// of a duplicated pair, the later copy is the one to drop
			const dups = share(
				t.duplicates.map((d) => Math.max(...d)),
				flagged,
			);
			const truthNamed = named(t);
			const fp = r.flagged_records.filter((i) => !truthNamed.has(i));
			const cleanCount = t.records - truthNamed.size;
			const fpRate = fp.length / cleanCount;
			table.push(
				`${name.padEnd(26)} ${cells.join("  ")}  flips ${flips.hit}/${flips.of}  dups ${dups.hit}/${dups.of}  FP ${fp.length}/${cleanCount} (${(fpRate * 100).toFixed(2)}%)`,
			);
			expect(missed, "poison kinds under 95% recall").toEqual([]);
			expect(flips.rate, "flipped records flagged").toBeGreaterThanOrEqual(0.95);
			expect(dups.rate, "later duplicate copies flagged").toBeGreaterThanOrEqual(0.95);
			expect(fpRate, `false positives: ${fp.slice(0, 20).join(", ")}`).toBeLessThanOrEqual(0.005);

			// a flip's finding says which side the majority supports: the genuine answer the truth file names
			const conflicts = r.findings.filter((f) => f.id === "conflicting-duplicates");
			let majorityRight = 0;
			for (const flip of t.flips) {
				const f = conflicts.find((c) => flip.flipped.every((i) => c.records.includes(i)));
				const majority = (f?.evidence as { majority?: number[] | null } | undefined)?.majority ?? [];
				if (flip.majority.every((i) => majority.includes(i)) && !flip.flipped.some((i) => majority.includes(i)))
					majorityRight++;
			}
			expect(majorityRight / t.flips.length, "flips whose majority side is named").toBeGreaterThanOrEqual(0.95);
			// an exact duplicate's finding names the first copy as evidence and only the later copy as the record to drop
			const exact = r.findings.filter((f) => f.id === "exact-duplicate");
			for (const d of t.duplicates) {
				const f = exact.find((e) => e.records.includes(Math.max(...d)));
				expect(f?.evidence).toMatchObject({ first: Math.min(...d) });
				expect(f?.records).not.toContain(Math.min(...d));
			}
		},
	);
});

/**
 * A classification set: every label goes with words of its own ("и" → Russian), which is the task, not a trigger; the
 * dirty-label backdoor (a rare token added to texts of other classes, labelled German) is. The clean set keeps two
 * findings of real catalogue data: German keyboard-layout names whose only German word is "Englisch", and one text
 * the catalogues give as both French and German — 10 records.
 */
describe("scanDataset on a classification set", () => {
	it("clean: word → label associations are the task, not triggers (≤ 0.2% flagged)", async () => {
		const t = truthOf(CLASSIFY_CLEAN);
		const r = await scanDataset({ files: [fixturePath(CLASSIFY_CLEAN)] });
		expectConsistent(r, t.records);
		table.push(
			`${CLASSIFY_CLEAN.padEnd(26)} findings ${r.findings.length}  FP ${r.flagged_records.length}/${t.records}`,
		);
		expect(r.flagged_records.length / t.records).toBeLessThanOrEqual(0.002);
		expect(r.findings.filter((f) => f.id === "trigger").length).toBeLessThanOrEqual(1);
	});

	it.each(CLASSIFY_POISONED)("%s: the dirty-label trigger's records all flagged, ≤ 0.2% of the rest", async (name) => {
		const t = truthOf(name);
		const r = await scanDataset({ files: [fixturePath(name)] });
		expectConsistent(r, t.records);
		const poisoned = t.poisoned["label-trigger"] ?? [];
		const s = share(poisoned, new Set(r.flagged_records));
		const fp = r.flagged_records.filter((i) => !poisoned.includes(i));
		table.push(`${name.padEnd(26)} label-trigger ${s.hit}/${s.of}  FP ${fp.length}/${t.records - s.of}`);
		expect(s.rate).toBeGreaterThanOrEqual(0.95);
		expect(fp.length / (t.records - s.of)).toBeLessThanOrEqual(0.002);
		const trigger = r.findings.find((f) => f.id === "trigger" && poisoned.every((i) => f.records.includes(i)));
		expect(trigger?.evidence).toMatchObject({ trigger: "cf", output: "German" });
		expect(r.ok).toBe(false);
	});
});
