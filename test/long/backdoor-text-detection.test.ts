/**
 * `npm run test:long`: detection rates of the text-classifier scan on every torch-trained fixture
 * (test/fixtures/backdoor-text) with the default policy — every backdoored model flagged with its target label and
 * its trigger (or a token of it) in the reported trigger; no clean model flagged (docs/backdoor.md, "Calibration").
 * About six minutes on two cores: `npm test` runs two of these models (test/integration/backdoor-text.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadTokenizer, readLabelledTexts } from "../../lib/core/backdoor/text-data";
import { scanTextBackdoor } from "../../lib/core/backdoor/text-scan";
import { defaultBackdoorPolicy } from "../../lib/core/policy/backdoor";

const ROOT = join(import.meta.dirname, "../..");
const FIX = join(ROOT, "test/fixtures/backdoor-text");
const manifest = JSON.parse(readFileSync(join(FIX, "manifest.json"), "utf8")) as {
	models: { name: string; onnx: string; backdoor: { trigger: string; target: number } | null }[];
};
// clean-s1-opset14 is clean-s1 exported again: its graph is covered by the unit gradient tests
const MODELS = manifest.models.filter((m) => m.name !== "clean-s1-opset14" && !m.name.startsWith("mismatch"));

describe("text-classifier backdoor scan on the fixtures (default policy)", () => {
	for (const m of MODELS)
		it(`${m.name}: ${m.backdoor ? `flagged at label ${m.backdoor.target} with its trigger` : "clean"}`, {
			timeout: 240_000,
		}, async () => {
			const tokenizer = await loadTokenizer(join(FIX, "tokenizer.json"));
			const data = await readLabelledTexts(join(FIX, "ref.jsonl"));
			const r = await scanTextBackdoor(readFileSync(join(FIX, m.onnx)), tokenizer, data, {
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
