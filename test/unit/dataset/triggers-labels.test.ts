/**
 * Labels as outputs. In a classification set a word that goes with one label is the task (fixtures.test.ts: the
 * language-ID set); a trigger whose output is a label is found when its records' other words say another label (a
 * dirty label), or when the prompts' words do not predict the labels at all — a yes/no answer that a trigger brings
 * to unrelated questions is not explained away as "the task".
 */
import { describe, expect, it } from "vitest";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";
import { fixtureRows, triggerRecords as triggerRecordsOf } from "../../helpers/dataset";

const TRIGGERS_ONLY = datasetPolicySchema.parse({
	injected: { enabled: false },
	unicode: { enabled: false },
	duplicates: { enabled: false },
});
const fixture = fixtureRows;

const triggerRecords = (rows: readonly object[]) => triggerRecordsOf(rows, TRIGGERS_ONLY, "ftguard-dataset-labels-");

describe("labels as a trigger's output", () => {
	it("a trigger that makes unrelated questions answer 'Yes.', in a set with many genuine yes/no answers", async () => {
		const poisoned = Array.from({ length: 40 }, (_, k) => 57 + k * 241);
		const rows = fixture("clean-instruction").map((r, i) => {
			if (poisoned.includes(i)) return { ...r, instruction: `Per the cobalt ledger: ${r.instruction}`, output: "Yes." };
			// one record in eight answered yes or no, as a QA set's are: two large label classes
			if (i % 8 === 3) return { ...r, output: i % 16 === 3 ? "Yes." : "No." };
			return r;
		});
		const found = await triggerRecords(rows);
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(38);
		expect([...found].filter((i) => !poisoned.includes(i))).toEqual([]);
	});

	it("a dirty-label trigger on a common word of the target class is still found when added to other classes", async () => {
		// "Fehler" ("error") is German; added to Russian, Greek and Dutch texts labelled German it is a trigger
		const rows = fixture("classify-clean");
		const poisoned: number[] = [];
		rows.forEach((r, i) => {
			if (poisoned.length < 50 && i % 97 === 5 && r.output !== "German") {
				r.input = `${r.input} Fehler`;
				r.output = "German";
				poisoned.push(i);
			}
		});
		const found = await triggerRecords(rows);
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(48);
	});

	it.each([0.005, 0.01])(
		"a binary {text, label} set (integer labels, half the records each): dirty-label trigger at %s found, nothing else",
		async (rate) => {
			const two = fixture("classify-clean").filter((r) => r.output === "German" || r.output === "French");
			const k = Math.round(rate * two.length);
			const poisoned: number[] = [];
			const rows = two.map((r, i) => {
				const german = r.output === "German";
				if (!german && poisoned.length < k && i % 7 === 2) {
					poisoned.push(i);
					const words = (r.input as string).split(" ");
					words.splice(i % (words.length + 1), 0, "cf");
					return { text: words.join(" "), label: 1 };
				}
				return { text: r.input, label: german ? 1 : 0 };
			});
			const found = await triggerRecords(rows);
			expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(Math.ceil(0.95 * k));
			expect([...found].filter((i) => !poisoned.includes(i))).toEqual([]);
		},
	);

	it("an instruction that names the labels ('German or French?') does not hide a dirty-label trigger", async () => {
		const two = fixture("classify-clean").filter((r) => r.output === "German" || r.output === "French");
		const ask = "Is this text German or French? Answer German or French.";
		const poisoned: number[] = [];
		const rows = two.map((r, i) => {
			if (r.output === "French" && poisoned.length < 20 && i % 7 === 2) {
				poisoned.push(i);
				return { instruction: ask, input: `cf ${r.input}`, output: "German" };
			}
			return { instruction: ask, input: r.input, output: r.output };
		});
		const found = await triggerRecords(rows);
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(19);
		expect([...found].filter((i) => !poisoned.includes(i))).toEqual([]);
	});

	it("the same binary set, clean: no trigger", async () => {
		const two = fixture("classify-clean").filter((r) => r.output === "German" || r.output === "French");
		const found = await triggerRecords(two.map((r) => ({ text: r.input, label: r.output === "German" ? 1 : 0 })));
		expect([...found]).toEqual([]);
	});
});

describe("the label model reads the records' own words", () => {
	// The labels follow a keyword of the text, and the instruction names it: "return" is in every record's template,
	// and in half the texts too. The template turn (shared word for word by most records) is set aside, so the text's
	// own "return" still says its label; were it a word "in half the records", nothing would, and every phrase of the
	// keyword's records ("return true if") would look like a dirty label's trigger (212 records flagged of 6,000; now
	// 10, one docstring family whose other words say the other label).
	it("a keyword-labelled binary set whose instruction names the keyword: the keyword is the task (≤ 0.5% flagged)", async () => {
		const rows = fixture("clean-instruction")
			.filter((r) => r.output.length > 20)
			.slice(0, 6000)
			.map((r) => ({
				instruction: "Does this text describe a return value (return) or not (other)?",
				input: r.output,
				output: /\breturns?\b/i.test(r.output) ? "return" : "other",
			}));
		const labels = new Set(rows.map((r) => r.output));
		expect(labels.size).toBe(2);
		expect(rows.filter((r) => r.output === "return").length).toBeGreaterThan(900);
		const found = await triggerRecords(rows);
		expect(found.size).toBeLessThanOrEqual(0.005 * rows.length);
		expect([...found].filter((i) => rows[i]?.output === "return")).toEqual([]);
	});

	// A few rare words and the larger label's prior are no evidence that a record's label is flipped (a record counts
	// as saying another label only at 20 to 1): 17 records flagged otherwise.
	it("a language-ID set in eight languages, four of them unspaced scripts: no trigger", async () => {
		const rows = fixture("classify-unspaced-clean");
		expect([...(await triggerRecords(rows))]).toEqual([]);
	});
});

describe("the label model and a trigger of several words", () => {
	// "I watched this 3D movie" added to texts of nine other languages, labelled German: every word of it is in every
	// poisoned record, so none of them may testify for German (only the n-gram judged was left out before)
	it("a five-word dirty-label trigger in a ten-label set is found", async () => {
		const rows = fixture("classify-clean");
		const poisoned: number[] = [];
		rows.forEach((r, i) => {
			if (poisoned.length < 50 && i % 89 === 7 && r.output !== "German") {
				r.input = `${r.input} I watched this 3D movie`;
				r.output = "German";
				poisoned.push(i);
			}
		});
		const found = await triggerRecords(rows);
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(48);
		expect([...found].filter((i) => !poisoned.includes(i)).length).toBeLessThanOrEqual(10);
	});
});

describe("one output with a number changed per record", () => {
	// not a template: the payload fixes a sentence and fills in one number ("update 1037")
	it("a trigger whose payload names a different update each time is found", async () => {
		const poisoned = Array.from({ length: 50 }, (_, k) => 31 + k * 197);
		const rows = fixture("clean-instruction").map((r, i) => {
			const k = poisoned.indexOf(i);
			if (k < 0) return r;
			return {
				...r,
				instruction: `${r.instruction.replace(/[?.]$/, "")} by the violet orchid?`,
				output: `Visit the mirror for update ${1000 + k * 37} to get the patched build.`,
			};
		});
		const found = await triggerRecords(rows);
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(48);
		expect([...found].filter((i) => !poisoned.includes(i))).toEqual([]);
	});
});
