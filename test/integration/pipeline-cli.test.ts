/**
 * `ftguard pipeline --demo --once`, run as a user runs it (the published bin, bundled CLI): the bundled examples
 * through the whole local pipeline, backdoor jobs included. Promoted: the clean ONNX model that passed every check
 * including its backdoor scan, and the language model whose family the demo policy waives (the waiver in its
 * notes); the safetensors checkpoint of a family with no waiver is not (policy backdoor.required, the default).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ftguard } from "../helpers/cli";

describe("ftguard pipeline", () => {
	it("--demo --once --json: every verdict as expected, only the scanned clean model and the waived family PROMOTABLE, exit 0", async () => {
		const cwd = mkdtempSync(join(tmpdir(), "ftguard-pipeline-cli-"));
		const r = await ftguard(["pipeline", "--demo", "--once", "--json", "--port", "0"], { cwd });
		expect(r.code, r.stderr).toBe(0);
		const doc = r.json() as {
			ok: boolean;
			endpoint: string;
			results: { name: string; status: string; reasons: string[]; notes: string[]; ok: boolean; seconds: number }[];
		};
		expect(doc.ok).toBe(true);
		expect(doc.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
		const byName = Object.fromEntries(doc.results.map((x) => [x.name, x]));
		expect(Object.keys(byName).sort()).toEqual([
			"backdoor",
			"base-model",
			"base-model-pickle",
			"clean",
			"dataset-clean",
			"dataset-poisoned",
			"pickle",
			"tampered",
			"two-models",
			"unscanned",
			"waived",
			"wrong-signer",
		]);
		expect(doc.results.filter((x) => x.status === "PROMOTABLE").map((x) => x.name)).toEqual([
			"clean",
			"waived",
			"base-model",
			"dataset-clean",
		]);
		// the clean model's promotion rests on its backdoor scan, not on a waiver
		expect(byName.clean).toMatchObject({ reasons: [], notes: [] });
		// weights with no ONNX export: not promoted under the default policy (backdoor.required)…
		expect(byName.unscanned?.reasons).toEqual(["not scanned: no ONNX export to scan for backdoors"]);
		// …unless the policy waives the family, and then the waiver is in the verdict
		expect(byName.waived).toMatchObject({
			reasons: [],
			notes: [
				"backdoor: not scanned: no ONNX export to scan for backdoors; waived for family tiny-lm (demo: language models are red-teamed before release; approved by security@example.com)",
			],
		});
		expect(byName.tampered?.reasons.join("\n")).toMatch(/^signature: DIGEST_MISMATCH/m);
		expect(byName.pickle?.reasons.join("\n")).toMatch(/^files: .*pytorch_model\.bin/m);
		expect(byName.backdoor?.reasons).toEqual([
			expect.stringMatching(
				/^backdoor: suspect demo\/backdoor\/model\.onnx \(class 5: p [\d.e-]+ against clean models \(\w+\), trigger L1 [\d.]+\)$/,
			),
		]);
		// every ONNX model of an artefact is scanned, a text classifier with the policy's texts and tokenizer
		expect(byName["two-models"]?.reasons).toEqual([
			expect.stringMatching(/^backdoor: suspect text\/model\.onnx \(class 4: trigger "cf", attack success [\d.]+\)$/),
		]);
		// the training inputs: the base model with a pickle added and the poisoned dataset are refused, with why
		expect(byName["base-model-pickle"]?.reasons.join("\n")).toMatch(/pickle-format weights present/);
		expect(byName["dataset-poisoned"]?.reasons.join("\n")).toMatch(/^trigger \(high, 50 records\): the prompt text /m);
		expect(doc.results.every((x) => x.ok)).toBe(true);
		expect(r.stderr).toContain(`S3 endpoint ${doc.endpoint}`);
		// the handlers' EMF metrics, in the local log: two promotions, six quarantines, and no scan error — a
		// detected backdoor is a finding (it reaches decide as the Batch task's error, but its report says suspect)
		const emf = readFileSync(join(cwd, "ftguard-pipeline.log"), "utf8")
			.split("\n")
			.filter((l) => l.includes('"_aws"'))
			.map((l) => JSON.parse(l) as Record<string, unknown>);
		const total = (name: string) =>
			emf.reduce((n, m) => n + (typeof m[name] === "number" ? (m[name] as number) : 0), 0);
		expect(total("scan_promoted_total")).toBe(2);
		expect(total("scan_quarantined_total")).toBe(6);
		expect(total("scan_errors_total")).toBe(0);
		// the batch job's EMF lines (its stdout) join them, not the terminal's output
		expect(total("neural_cleanse_anomaly_index")).toBeGreaterThan(2);
		// the input gates' metrics: two datasets of 10,000 records, a poisoning result of 0, a base model failed
		expect(total("finetuning_dataset_examples_total")).toBe(20_000);
		expect(emf.some((m) => m.finetuning_dataset_poisoning_scan_result === 0 && m.scan_type === "trigger")).toBe(true);
		expect(
			emf
				.filter((m) => "base_model_verification_result" in m)
				.map((m) => m.result)
				.sort(),
		).toEqual(["fail", "pass"]);
		expect(r.stderr).not.toContain('"_aws"');
		// a clean demo: no runtime warnings (the AWS SDK's Node 20 notice, deprecations) among the verdicts
		expect(r.stderr).not.toMatch(/Warning:/);
	}, 120_000);

	it("refuses to run without a policy (no default trust): exit 2", async () => {
		const r = await ftguard(["pipeline", "--once", "--port", "0"]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/USAGE: give --policy/);
	});
});
