/**
 * The trigger miner alone on the poisoned fixtures (the injected-output and Unicode detectors off, so nothing else
 * can find the records for it): each poison kind's records are named by "trigger" findings, and each such finding
 * names the trigger and the output it comes with.
 */
import { afterAll, describe, expect, it } from "vitest";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";
import { fixturePath, POISON_KINDS, POISONED_FIXTURES, share, truthOf } from "../../helpers/dataset";

const TRIGGERS_ONLY = datasetPolicySchema.parse({ injected: { enabled: false }, unicode: { enabled: false } });

const table: string[] = [];

afterAll(() => {
	if (table.length > 0) console.log(`dataset fixtures, trigger miner alone:\n${table.join("\n")}`);
});

describe("the trigger miner on the fixtures", () => {
	it.each(POISONED_FIXTURES)("%s: ≥ 0.95 of each kind's records in trigger findings", async (name) => {
		const t = truthOf(name);
		const r = await scanDataset({ files: [fixturePath(name)], policy: TRIGGERS_ONLY });
		expect(
			r.findings.filter(
				(f) =>
					f.id === "injected-output" ||
					f.id.endsWith("-character") ||
					f.id === "homoglyph-word" ||
					f.id === "bidi-override",
			),
		).toEqual([]);
		const triggers = r.findings.filter((f) => f.id === "trigger");
		const found = new Set(triggers.flatMap((f) => f.records));
		const cells: string[] = [];
		const missed: string[] = [];
		for (const kind of POISON_KINDS) {
			const s = share(t.poisoned[kind] ?? [], found);
			cells.push(`${kind} ${s.hit}/${s.of}`);
			if (s.rate < 0.95) missed.push(`${kind}: ${s.hit}/${s.of}`);
		}
		const poisoned = new Set(Object.values(t.poisoned).flat());
		const others = [...found].filter((i) => !poisoned.has(i));
		table.push(`${name.padEnd(26)} ${cells.join("  ")}  other records in trigger findings ${others.length}`);
		expect(missed, "poison kinds under 95% recall by the trigger miner").toEqual([]);
		// a trigger finding is about poisoned records, not clean ones
		expect(others.length / t.records).toBeLessThanOrEqual(0.005);
		for (const f of triggers) {
			expect(f.severity).toBe("high");
			expect(f.evidence).toMatchObject({ trigger: expect.any(String), output: expect.any(String) });
			expect(f.message).toContain((f.evidence as { trigger: string }).trigger);
		}
		// the phrase kind is named by its words, the system-prompt kind by the mode line
		const messages = triggers.map((f) => f.message).join("\n");
		expect(messages).toMatch(/lighthouse/);
		expect(messages).toMatch(/zephyr/);
		expect(messages).toMatch(/violet|orchid|whisper/);
	});
});
