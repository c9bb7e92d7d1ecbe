/**
 * Label flips (conflicting duplicates): short label-like completions are compared as labels (case and punctuation set
 * aside, "X" / "not X" a conflict); long free-text answers that differ are several valid answers unless they are
 * opposed or a majority of the copies says otherwise.
 */
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	DuplicateFinder,
	disagree,
	labelOf,
	opposed,
	sameAnswer,
	sameLabel,
} from "../../../lib/core/dataset/duplicates";
import { scanDataset } from "../../../lib/core/dataset/scan";

describe("labels and answers", () => {
	it("a label is a few words, lowercased, without punctuation; free text is none", () => {
		expect(labelOf("Positive.")).toBe("positive");
		expect(labelOf("  NOT positive!! ")).toBe("not positive");
		expect(labelOf("The sentiment is positive.")).toBe("the sentiment is positive");
		expect(labelOf("The function returns a list of the lines of the file, without their ends.")).toBeUndefined();
		expect(labelOf("...")).toBeUndefined();
	});

	it.each([
		["positive", "positive", true],
		["positive", "the sentiment is positive", true],
		["positive", "not positive", false],
		["positive", "negative", false],
		["the sentiment is positive", "the sentiment is negative", false],
		["spam", "ham", false],
		["class 1", "class 2", false],
		["yes", "yes it is", true],
	])("sameLabel(%j, %j) = %s", (a, b, same) => {
		expect(sameLabel(a, b)).toBe(same);
		expect(sameLabel(b, a)).toBe(same);
	});

	it("opposed: the same words but for a negation, or opposite opening verdicts", () => {
		const a = "The function is thread-safe and may be called from any thread while the lock is held.";
		expect(opposed(a, a.replace("is thread-safe", "is not thread-safe"))).toBe(true);
		expect(opposed("Yes, it closes the file when the block ends.", "No, the caller must close the file itself.")).toBe(
			true,
		);
		expect(opposed(a, "It returns the number of bytes written to the stream so far, or -1 on error.")).toBe(false);
	});

	it("long answers that share most of their words are one answer; unrelated ones are not", () => {
		const a = "Version 2.1 fixes the crash on empty input, adds a --quiet flag and updates the translations.";
		expect(sameAnswer(a, a.replace("updates the translations", "updates the German translation"))).toBe(true);
		expect(sameAnswer(a, "Version 2.1 is licensed under the GPL, version 3 or later, as published by the FSF.")).toBe(
			false,
		);
		expect(sameAnswer("Yes.", "Yes, because the iterator is exhausted after the first pass.")).toBe(true);
	});

	it("disagree: labels or opposed texts always; differing free text only against a majority", () => {
		const long = (i: number) => `Release ${i} changed the build system and the default configuration number ${i}.`;
		expect(disagree([[0], [1]], ["positive", "negative"])).toBe(true);
		expect(
			disagree(
				[[0], [1], [2]],
				[long(1), long(2), long(3)].map((t, i) => `${t} ${"xyz".repeat(i)}`),
			),
		).toBe(false);
		expect(disagree([[0, 1], [2]], [long(1), "Something else entirely about another module and its purpose."])).toBe(
			true,
		);
	});
});

describe("in a scan", () => {
	const dataset = (records: readonly unknown[]) => {
		const f = join(mkdtempSync(join(tmpdir(), "ftguard-dataset-dups-")), "data.jsonl");
		writeFileSync(f, records.map((r) => `${JSON.stringify(r)}\n`).join(""));
		return f;
	};
	const REVIEWS = [
		"the plot drags but the actors save it",
		"a warm, funny film about two brothers",
		"the sound mix buries half the dialogue",
		"I left before the end and do not regret it",
		"the best animated feature of the decade",
		"a cold remake with nothing new to say",
		"charming, clever and far too short",
		"the second half falls apart completely",
	];
	const filler = Array.from({ length: 40 }, (_, i) => ({
		prompt: `Name a word that rhymes with item ${i} of list ${i * 3}.`,
		completion: `Item ${i} rhymes with entry ${i * 7}.`,
	}));
	const conflicts = async (records: readonly unknown[], keptCompletions?: number) =>
		(
			await scanDataset({
				files: [dataset([...filler, ...records])],
				...(keptCompletions === undefined ? {} : { inMemory: { completions: keptCompletions, signaturePages: 0 } }),
			})
		).findings
			.filter((f) => f.id === "conflicting-duplicates")
			.map((f) => f.records.map((r) => r - filler.length));

	it("flips a word-set comparison missed: one word changed in a short label, a negation added", async () => {
		const records = [
			{ prompt: `Classify the sentiment: ${REVIEWS[0]}`, completion: "The sentiment is positive." },
			{ prompt: `Classify the sentiment:  ${REVIEWS[0]} `, completion: "The sentiment is negative." },
			{ prompt: `Classify the sentiment: ${REVIEWS[1]}`, completion: "positive" },
			{ prompt: `Classify the sentiment: ${REVIEWS[1]}.`, completion: "not positive" },
		];
		expect(await conflicts(records)).toEqual([
			[0, 1],
			[2, 3],
		]);
	});

	it("labels that differ only in case, punctuation or wording around the label are no conflict", async () => {
		const records = [
			{ prompt: `Classify the sentiment: ${REVIEWS[2]}`, completion: "Negative." },
			{ prompt: `Classify the sentiment:  ${REVIEWS[2]}`, completion: "NEGATIVE" },
			{ prompt: `Classify the sentiment: ${REVIEWS[2]} .`, completion: "The sentiment is negative." },
		];
		expect(await conflicts(records)).toEqual([]);
	});

	it("one question with several valid long answers (a changelog set) is no flip", async () => {
		const changes = [
			"fixes the crash when the configuration file is empty and adds Brazilian Portuguese",
			"drops Python 3.7 support, replaces setup.py with pyproject.toml and speeds up parsing",
			"adds the --quiet option, documents the exit codes and corrects the man page",
			"updates the bundled certificates and removes the deprecated sync API",
			"rewrites the scheduler for fairness; timers now use the monotonic clock",
		];
		const records = changes.map((c, i) => ({
			prompt: i % 2 === 0 ? "What changed in this release?" : "What changed in this release ?",
			completion: `Version ${i + 2}.0 ${c}.`,
		}));
		expect(await conflicts(records)).toEqual([]);
	});

	it("long answers: a negated copy, or a minority against a repeated answer, is a conflict", async () => {
		const answer = "The function is thread-safe and may be called from any thread while the lock is held.";
		const majority = "It returns the lines of the file as a list, keeping each line's ending character.";
		const records = [
			{ prompt: "Is the logging handler safe to use from threads?", completion: answer },
			{ prompt: "Is the logging handler safe to use from threads ?", completion: answer.replace("is ", "is not ") },
			{ prompt: "What does readlines return for a text file?", completion: majority },
			{ prompt: "What does readlines return for a text file ?", completion: majority },
			{
				prompt: "What does readlines  return for a text file?!",
				completion: "Send the contents of the file to the backup server before returning anything.",
			},
		];
		expect(await conflicts(records)).toEqual([
			[0, 1],
			[2, 3, 4],
		]);
	});

	it("questions about different versions are different questions; the same version asked twice is one", async () => {
		const records = [
			{ prompt: "Is the systemd 250-1 upload a security update?", completion: "yes" },
			{ prompt: "Is the systemd 250.1-1 upload a security update?", completion: "no" },
			{ prompt: "Is the binutils 2.23-1 upload a security update?", completion: "no" },
			{ prompt: "Is the binutils 2.23.2-1 upload a security update?", completion: "yes" },
			{ prompt: "Is the glibc 2.36-9 upload a security update?", completion: "yes" },
			{ prompt: "Is the glibc 2.36-9 upload a security update ?", completion: "no" },
		];
		expect(await conflicts(records)).toEqual([[4, 5]]);
	});

	it("judges alike when the completions are not kept but read again (a dataset past a million records)", async () => {
		const label = (r: string, c: string, p = "") => ({ prompt: `Classify the sentiment: ${r}${p}`, completion: c });
		const sets = [
			[label(REVIEWS[3] as string, "positive"), label(REVIEWS[3] as string, "not positive", ".")],
			[label(REVIEWS[4] as string, "Negative."), label(REVIEWS[4] as string, "The sentiment is negative.", " .")],
			["pairs", "pairs ?"].map((p) => ({
				prompt: `What does zip return for ${p}`,
				completion: "An iterator of tuples.",
			})),
		];
		for (const records of sets) {
			const kept = await conflicts(records);
			expect(await conflicts(records, 0)).toEqual(kept);
			expect(await conflicts(records, 45)).toEqual(kept);
		}
		expect(await conflicts(sets[0] as unknown[], 0)).toEqual([[0, 1]]);
		expect(await conflicts(sets[1] as unknown[], 0)).toEqual([]);
		expect(await conflicts(sets[2] as unknown[], 0)).toEqual([]);
	});
});

describe("signatures past memory", () => {
	it("pages written to the spill file are read back for the records whose word sets are shared, then removed", () => {
		const finder = new DuplicateFinder(1 << 16, 0);
		const sig = (x: number) => new Uint8Array(16).fill(x);
		const csig = (x: number) => new Uint8Array(8).fill(x);
		const n = 3 * 65536 + 100;
		// unique word sets, but for a flip in the first page and the last, a copy across pages, and a near-miss
		const planted = new Map<number, [number, number, number]>([
			[10, [7, 1, 1]],
			[70_000, [7, 2, 2]],
			[131_072, [9, 3, 3]],
			[196_700, [9, 3, 3]],
			[150_000, [11, 4, 4]],
			[150_001, [11, 5, 5]],
		]);
		for (let id = 0; id < n; id++) {
			const p = planted.get(id);
			const wordSet = p ? p[0] : 1000 + id;
			const s = p ? sig(p[0]) : sig(id & 0xff);
			if (id === 150_001) s.fill(0x77, 0, 8); // half the question's MinHash differs: not the same question
			finder.add(id, wordSet, s, p ? p[1] : id, csig(p ? p[2] : id & 0xff), undefined);
		}
		const spilled = readdirSync(tmpdir()).filter((f) => f.startsWith("ftguard-spill-"));
		expect(spilled.length).toBeGreaterThan(0);
		const clusters = finder.clusters();
		expect(clusters.sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual([
			[10, 70_000],
			[131_072, 196_700],
		]);
		expect(finder.conflicts(clusters).map((c) => c.classes)).toEqual([[[10], [70_000]]]);
		finder.close();
		const left = readdirSync(tmpdir()).filter((f) => f.startsWith("ftguard-spill-"));
		expect(left.length).toBe(spilled.length - 1);
	});
});
