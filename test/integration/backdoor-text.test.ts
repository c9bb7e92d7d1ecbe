/**
 * The text-classifier scan on the torch-trained fixtures (test/fixtures/backdoor-text) with the default policy: a
 * clean class-imbalanced model stays clean; through the CLI, a backdoored model is exit 1 with its trigger in --json,
 * usage errors are exit 2, a mismatched export is stopped by the binding. Every fixture: npm run test:long.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectionTests, TEXT_FIX as FIX, textFixtures } from "../helpers/backdoor-text";

const ROOT = join(import.meta.dirname, "../..");

// the full set is test/long/backdoor-text-detection.test.ts (npm run test:long); here one clean model of the hard
// kind (class-imbalanced) in-process, and a backdoored one through the CLI below
detectionTests(textFixtures().filter((m) => m.name === "clean-imbalanced-s4"));

describe("ftguard backdoor --texts (CLI)", () => {
	const run = (model: string, ...extra: string[]) =>
		spawnSync(
			process.execPath,
			[
				join(ROOT, "bin/ftguard.mjs"),
				"backdoor",
				join(FIX, model, "model.onnx"),
				"--texts",
				join(FIX, "ref.jsonl"),
				"--tokenizer",
				join(FIX, "tokenizer.json"),
				...extra,
			],
			{ encoding: "utf8", timeout: 240_000 },
		);

	it("exit 1 and the trigger in --json for a backdoored model", { timeout: 240_000 }, () => {
		const p = run("backdoor-rareword-t4", "--json");
		expect(p.status).toBe(1);
		const r = JSON.parse(p.stdout);
		expect(r.verdict).toBe("suspect");
		expect(r.labels[4].trigger.split(" ")).toContain("cf");
		expect(r.labels[4]).toMatchObject({ flagged: true });
		// ref.jsonl's ~18 held-out texts per label cannot show a trigger that fires from one source label only: said
		expect(r.limits).toEqual([
			expect.stringMatching(
				/^source-specific triggers: a source label is judged alone only with at least 35 held-out texts/,
			),
		]);
		expect(r.model).toMatchObject({
			num_classes: 5,
			vocab: 2055,
			inputs: ["input_ids", "attention_mask", "token_type_ids"],
		});
	});

	it("--texts without --tokenizer, or with --data, is a usage error (exit 2)", () => {
		const p = spawnSync(
			process.execPath,
			[join(ROOT, "bin/ftguard.mjs"), "backdoor", join(FIX, "clean-s1/model.onnx"), "--texts", join(FIX, "ref.jsonl")],
			{ encoding: "utf8" },
		);
		expect(p.status).toBe(2);
		expect(p.stderr).toContain("--tokenizer");
	});

	it("a text model's mismatched weights stop the scan before it runs (export binding, exit 1)", () => {
		const p = run("mismatch-clean-onnx-backdoor-weights", "--json");
		expect(p.status).toBe(1);
		expect(p.stdout + p.stderr).toContain("EXPORT_MISMATCH");
	});
});
