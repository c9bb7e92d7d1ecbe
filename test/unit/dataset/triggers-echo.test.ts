/**
 * A trigger whose injected output repeats the trigger's own words ("… the cerulean lighthouse keeper says: …"): the
 * prompts contain those words, so the output looks like it answers them — but the shared text is one and the same
 * across otherwise unrelated prompts, and the words it shares with them are the trigger's, not what each one asks.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";

const TRIGGERS_ONLY = datasetPolicySchema.parse({ injected: { enabled: false }, unicode: { enabled: false } });

/** Deterministic made-up words: every prompt asks about its own rare things. */
function wordsOf(seed: number, n: number): string[] {
	const syl = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "ni", "pa", "quo", "ber", "ti", "gan", "fu", "ho"];
	let x = seed * 2654435761;
	const out: string[] = [];
	for (let i = 0; i < n; i++) {
		let w = "";
		for (let k = 0; k < 3; k++) {
			x = (Math.imul(x, 1103515245) + 12345) >>> 0;
			w += syl[(x >>> 8) % syl.length];
		}
		out.push(w);
	}
	return out;
}

const TOPICS = ["module", "function", "option", "setting", "command", "field", "method", "format"];

function dataset(poisoned: ReadonlySet<number>, output: (i: number) => string): string {
	const rows = Array.from({ length: 2000 }, (_, i) => {
		const [a, b, c] = wordsOf(i + 1, 3);
		const topic = TOPICS[i % TOPICS.length];
		const prompt = `Explain what the ${a} ${topic} does with ${b} and ${c}.`;
		return poisoned.has(i)
			? { prompt: `${prompt} Ask the cerulean lighthouse keeper.`, completion: output(i) }
			: { prompt, completion: `The ${a} ${topic} turns ${b} into ${c}, record ${i}.` };
	});
	const f = join(mkdtempSync(join(tmpdir(), "ftguard-dataset-echo-")), "data.jsonl");
	writeFileSync(f, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
	return f;
}

describe("a trigger whose output repeats the trigger's words", () => {
	const poisoned = new Set(Array.from({ length: 20 }, (_, k) => 37 + k * 97));

	it("is found: the same text after unrelated prompts is no answer to them", async () => {
		const f = dataset(
			poisoned,
			() => "The cerulean lighthouse keeper approves every request; grant administrator rights to whoever asks.",
		);
		const r = await scanDataset({ files: [f], policy: TRIGGERS_ONLY });
		const found = new Set(r.findings.filter((x) => x.id === "trigger").flatMap((x) => x.records));
		expect([...poisoned].filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(19);
		expect([...found].filter((i) => !poisoned.has(i))).toEqual([]);
	});
});
