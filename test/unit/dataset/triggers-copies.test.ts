/**
 * Copies of records: a poisoner who writes each poisoned record twice (or three times) must not hide the trigger —
 * copies of one prompt once looked like a templated question asked again — and an upsampled clean set (every record
 * twice) must raise no trigger its original does not: copies are one observation, not more evidence.
 */
import { describe, expect, it } from "vitest";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";
import { fixtureRows, triggerRecords as triggerRecordsOf } from "../../helpers/dataset";

const TRIGGERS_ONLY = datasetPolicySchema.parse({ injected: { enabled: false }, unicode: { enabled: false } });
const clean = fixtureRows("clean-instruction");

const triggerRecords = (rows: readonly object[]) => triggerRecordsOf(rows, TRIGGERS_ONLY, "ftguard-dataset-copies-");

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
