/**
 * The text-classifier fixtures (test/fixtures/backdoor-text) and the detection test every one of them gets: shared by
 * `npm test` (a sample) and `npm run test:long` (all of them).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadTokenizer, readLabelledTexts } from "../../lib/core/backdoor/text-data";
import { scanTextBackdoor } from "../../lib/core/backdoor/text-scan";
import { defaultBackdoorPolicy } from "../../lib/core/policy/backdoor";

export const TEXT_FIX = join(import.meta.dirname, "../fixtures/backdoor-text");

export interface TextFixture {
	name: string;
	onnx: string;
	backdoor: { trigger: string; target: number } | null;
}

export const textFixtures = (): TextFixture[] =>
	(JSON.parse(readFileSync(join(TEXT_FIX, "manifest.json"), "utf8")) as { models: TextFixture[] }).models;

/** Each model scanned with the default policy: a clean one clean; a backdoored one flagged at its target with its trigger. */
export function detectionTests(models: readonly TextFixture[]): void {
	describe("text-classifier backdoor scan on the fixtures (default policy)", () => {
		for (const m of models)
			it(`${m.name}: ${m.backdoor ? `flagged at label ${m.backdoor.target} with its trigger` : "clean"}`, {
				timeout: 240_000,
			}, async () => {
				const tokenizer = await loadTokenizer(join(TEXT_FIX, "tokenizer.json"));
				const data = await readLabelledTexts(join(TEXT_FIX, "ref.jsonl"));
				const r = await scanTextBackdoor(readFileSync(join(TEXT_FIX, m.onnx)), tokenizer, data, {
					policy: defaultBackdoorPolicy().text,
					device: "cpu",
				});
				if (m.backdoor === null) {
					expect(r.verdict).toBe("clean");
					expect(r.suspect_classes).toEqual([]);
					return;
				}
				expect(r.verdict).toBe("suspect");
				expect(r.suspect_classes).toEqual([m.backdoor.target]);
				const label = r.labels[m.backdoor.target];
				const words = m.backdoor.trigger.split(" ").map((w) => (w === "\u200b" ? "\\u200b" : w));
				expect(label?.trigger.split(" ").some((t) => words.includes(t))).toBe(true);
				expect(label?.attack_success).toBeGreaterThanOrEqual(0.9);
			});
	});
}
