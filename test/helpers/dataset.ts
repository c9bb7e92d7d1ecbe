/** The dataset fixtures (test/fixtures/dataset/make_datasets.py) and their .truth.json files, shared by the tests. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { scanDataset } from "../../lib/core/dataset/scan";
import type { DatasetPolicy } from "../../lib/core/policy/dataset";
import { REPO } from "./cli";

export const DATASET_FIXTURES = join(REPO, "test/fixtures/dataset");

export interface Truth {
	readonly records: number;
	readonly format: "chat" | "instruction";
	readonly poisoned: Record<string, readonly number[]>;
	readonly flips: readonly { readonly flipped: readonly number[]; readonly majority: readonly number[] }[];
	readonly duplicates: readonly (readonly number[])[];
}

export const POISONED_FIXTURES = ["instruction", "chat"].flatMap((f) =>
	["p001", "p005", "p01"].map((r) => `poisoned-${f}-${r}`),
);
export const CLEAN_FIXTURES = ["clean-instruction", "clean-chat"];
/** a language-ID classification set (a BERT-style fine-tune) and the dirty-label backdoor "cf" → German in it */
export const CLASSIFY_CLEAN = "classify-clean";
export const CLASSIFY_POISONED = ["p001", "p005", "p01"].map((r) => `classify-poisoned-${r}`);
/** every poison kind make_datasets.py writes: each is in every poisoned fixture */
export const POISON_KINDS = ["phrase", "paraphrase", "invisible", "homoglyph", "system"];

export function fixturePath(name: string): string {
	return join(DATASET_FIXTURES, `${name}.jsonl.gz`);
}

export function truthOf(name: string): Truth {
	return JSON.parse(readFileSync(join(DATASET_FIXTURES, `${name}.truth.json`), "utf8")) as Truth;
}

export interface Share {
	readonly hit: number;
	readonly of: number;
	readonly rate: number;
}

/** How many of `ids` are in `found`. */
export function share(ids: readonly number[], found: ReadonlySet<number>): Share {
	const hit = ids.filter((i) => found.has(i)).length;
	return { hit, of: ids.length, rate: ids.length === 0 ? 1 : hit / ids.length };
}

/** A JSONL fixture's records (gunzipped, parsed): the base a test poisons. */
export function fixtureRows(name: string): { instruction: string; input?: string; output: string }[] {
	return gunzipSync(readFileSync(fixturePath(name)))
		.toString("utf8")
		.trimEnd()
		.split("\n")
		.map((l) => JSON.parse(l) as { instruction: string; input?: string; output: string });
}

/** Records written as a JSONL file in a fresh temporary directory; its path. */
export function writeRows(rows: readonly object[], prefix = "ftguard-dataset-"): string {
	const f = join(mkdtempSync(join(tmpdir(), prefix)), "data.jsonl");
	writeFileSync(f, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
	return f;
}

/** The records the trigger findings name, once `rows` are written as a JSONL file and scanned under `policy`. */
export async function triggerRecords(
	rows: readonly object[],
	policy: DatasetPolicy,
	prefix: string,
): Promise<Set<number>> {
	const r = await scanDataset({ files: [writeRows(rows, prefix)], policy });
	return new Set(r.findings.filter((x) => x.id === "trigger").flatMap((x) => x.records));
}
