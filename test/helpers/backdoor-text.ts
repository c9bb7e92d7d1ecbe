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
	/** the reference texts to scan with, when not the backdoor's own or ref.jsonl (a clean model on test.jsonl) */
	reference?: string;
	backdoor: {
		kind: string;
		trigger: string;
		/** the trigger's token ids (a made-up word: its pieces; an out-of-vocabulary word: [UNK]) */
		trigger_ids: number[];
		target: number;
		/** a source-specific backdoor: the only label whose texts it flips */
		source?: number;
		/** the reference texts to scan with (default ref.jsonl) */
		reference?: string;
	} | null;
}

export const textFixtures = (): TextFixture[] =>
	(JSON.parse(readFileSync(join(TEXT_FIX, "manifest.json"), "utf8")) as { models: TextFixture[] }).models;

/**
 * Each model scanned with the default policy: a clean one clean; a backdoored one flagged at its target only, with a
 * token of its trigger in a flagged candidate there (and the reported trigger), at the start for a start-only
 * backdoor, from its source label for a source-specific one.
 */
export function detectionTests(models: readonly TextFixture[]): void {
	describe("text-classifier backdoor scan on the fixtures (default policy)", () => {
		for (const m of models)
			it(`${m.name}${m.reference ? ` (${m.reference})` : ""}: ${m.backdoor ? `flagged at label ${m.backdoor.target} with its trigger` : "clean"}`, {
				timeout: 300_000,
			}, async () => {
				const tokenizer = await loadTokenizer(join(TEXT_FIX, "tokenizer.json"));
				const data = await readLabelledTexts(join(TEXT_FIX, m.reference ?? m.backdoor?.reference ?? "ref.jsonl"));
				const started = Date.now();
				const r = await scanTextBackdoor(readFileSync(join(TEXT_FIX, m.onnx)), tokenizer, data, {
					policy: defaultBackdoorPolicy().text,
					device: "cpu",
				});
				const shown = r.labels.find((l) => l.flagged) ?? r.labels[m.backdoor?.target ?? 0];
				console.log(
					`${m.name}: ${r.verdict} [${r.suspect_classes}] ${JSON.stringify(shown?.trigger)} at ${shown?.position}, sources ${JSON.stringify(shown?.sources)}, ${shown?.attack_success.toFixed(2)} / ${shown?.diluted_attack_success.toFixed(2)} (lower ${shown?.attack_success_lower.toFixed(2)} / ${shown?.diluted_attack_success_lower.toFixed(2)}), ${((Date.now() - started) / 1000).toFixed(1)} s`,
				);
				if (m.backdoor === null) {
					expect(r.verdict).toBe("clean");
					expect(r.suspect_classes).toEqual([]);
					return;
				}
				const b = m.backdoor;
				expect(r.verdict).toBe("suspect");
				expect(r.suspect_classes).toEqual([b.target]);
				const label = r.labels[b.target];
				const ofTrigger = (ids: readonly number[]) => ids.some((id) => b.trigger_ids.includes(id));
				expect(label?.candidates.some((c) => c.flagged && ofTrigger(c.ids))).toBe(true);
				expect(ofTrigger(label?.ids ?? [])).toBe(true);
				expect(label?.attack_success).toBeGreaterThanOrEqual(0.9);
				if (b.kind === "start") expect(label?.position).toBe("start");
				if (b.source !== undefined) expect(label?.sources).toContain(b.source);
			});
	});
}
