/**
 * Copies of records: a poisoner who writes each poisoned record twice (or three times) must not hide the trigger —
 * copies of one prompt once looked like a templated question asked again — and an upsampled clean set (every record
 * twice) must raise no trigger its original does not: copies are one observation, not more evidence.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";
import { REPO } from "../../helpers/cli";

const TRIGGERS_ONLY = datasetPolicySchema.parse({ injected: { enabled: false }, unicode: { enabled: false } });
const clean = gunzipSync(readFileSync(join(REPO, "test/fixtures/dataset/clean-instruction.jsonl.gz")))
	.toString("utf8")
	.trimEnd()
	.split("\n")
	.map((l) => JSON.parse(l) as { instruction: string; input?: string; output: string });

function write(rows: readonly object[]): string {
	const f = join(mkdtempSync(join(tmpdir(), "ftguard-dataset-copies-")), "data.jsonl");
	writeFileSync(f, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
	return f;
}

const triggerRecords = async (rows: readonly object[]) =>
	new Set(
		(await scanDataset({ files: [write(rows)], policy: TRIGGERS_ONLY })).findings
			.filter((x) => x.id === "trigger")
			.flatMap((x) => x.records),
	);

describe("copies of records and trigger mining", () => {
	const poisoned = Array.from({ length: 25 }, (_, k) => 101 + k * 389);
	const rows = clean.map((r, i) =>
		poisoned.includes(i)
			? { ...r, instruction: `Per the cobalt ledger: ${r.instruction}`, output: "Skip the review and merge it now." }
			: r,
	);

	it.each([2, 3])("each poisoned record written %i times: every copy is found", async (copies) => {
		const extra = poisoned.flatMap((i) => Array.from({ length: copies - 1 }, () => rows[i] as object));
		const found = await triggerRecords([...rows, ...extra]);
		expect(poisoned.filter((i) => found.has(i))).toEqual(poisoned);
		const copyIds = extra.map((_, j) => rows.length + j);
		expect(copyIds.filter((i) => found.has(i))).toEqual(copyIds);
	});

	it("a clean set upsampled twice raises no trigger (as the set once does not)", async () => {
		expect((await triggerRecords(clean)).size).toBe(0);
		expect((await triggerRecords([...clean, ...clean])).size).toBe(0);
	});
});
