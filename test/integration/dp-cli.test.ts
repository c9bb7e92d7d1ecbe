/** `ftguard dp epsilon` and `ftguard dp check` as a planner or a CI gate runs them: output, JSON shape, exit codes. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ftguard } from "../helpers/cli";

const MNIST = ["--noise-multiplier", "1.1", "--sample-rate", String(256 / 60_000), "--delta", "1e-5"];

describe("ftguard dp epsilon", () => {
	it("TensorFlow Privacy's MNIST setting from epochs: ε 2.60 (Balle et al. 2020), classic 3.01, in one line", async () => {
		const r = await ftguard(["dp", "epsilon", ...MNIST, "--epochs", "60"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toMatch(
			/^ε = 2\.597 at δ = 0\.00001 \(RDP order 8\.1; Balle et al\. 2020 conversion; classic: 3\.008\) — .* 14063 steps\n$/,
		);
		expect(r.stderr).toBe("");
	});

	it("--json: one document with the order, the other conversion and the steps", async () => {
		const r = await ftguard(["dp", "epsilon", ...MNIST, "--steps", "14063", "--conversion", "classic", "--json"]);
		expect(r.code).toBe(0);
		const j = r.json() as Record<string, unknown>;
		expect(j).toMatchObject({ order: 8.8, conversion: "classic", steps: 14063, order_at_edge: false });
		expect(j.epsilon as number).toBeCloseTo(3.008, 3);
		expect(j.epsilon_balle2020 as number).toBeCloseTo(2.597, 3);
	});

	it("--max-epsilon: exit 1 above it, 0 within it", async () => {
		const above = await ftguard(["dp", "epsilon", ...MNIST, "--steps", "14063", "--max-epsilon", "2", "--json"]);
		expect(above.code).toBe(1);
		expect(above.json()).toMatchObject({ max_epsilon: 2, within: false });
		const within = await ftguard(["dp", "epsilon", ...MNIST, "--steps", "14063", "--max-epsilon", "8"]);
		expect(within.code).toBe(0);
		expect(within.stdout).toContain("within the maximum ε 8");
	});

	it.each([
		[["--noise-multiplier", "0", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"], /noise multiplier/],
		[["--noise-multiplier", "1", "--sample-rate", "1.5", "--steps", "10", "--delta", "1e-5"], /sampling rate/],
		[["--noise-multiplier", "1", "--sample-rate", "0", "--epochs", "2", "--delta", "1e-5"], /sampling rate/],
		[["--noise-multiplier", "1", "--sample-rate", "0.01", "--steps", "2.5", "--delta", "1e-5"], /steps/],
		[["--noise-multiplier", "1", "--sample-rate", "0.01", "--steps", "10", "--delta", "1"], /δ must be/],
		[["--noise-multiplier", "x", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"], /must be a number/],
		[
			["--noise-multiplier", "1", "--sample-rate", "0.01", "--steps", "10", "--epochs", "2", "--delta", "1e-5"],
			/exactly one/,
		],
		[["--noise-multiplier", "1", "--sample-rate", "0.01", "--delta", "1e-5"], /exactly one/],
	])("parameters that cannot be accounted are exit 2 with one line (%#)", async (args, message) => {
		const r = await ftguard(["dp", "epsilon", ...(args as string[])]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: USAGE: /);
		expect(r.stderr).toMatch(message as RegExp);
		expect(r.stderr.trim().split("\n")).toHaveLength(1);
	});
});

describe("ftguard dp check (the pipeline's DP-SGD gate on a directory)", () => {
	const declaration = {
		jobId: "train-7",
		dp: { noiseMultiplier: 1.1, maxGradNorm: 1, batchSize: 256, datasetSize: 60000, epochs: 60, delta: 1e-5 },
	};
	function artefact(training?: unknown): string {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-dp-check-"));
		writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "bert" }));
		if (training !== undefined)
			writeFileSync(
				join(dir, "ftguard-training.json"),
				typeof training === "string" ? training : JSON.stringify(training),
			);
		return dir;
	}
	const policy = (p: unknown) => {
		const f = join(mkdtempSync(join(tmpdir(), "ftguard-dp-policy-")), "policy.json");
		writeFileSync(f, JSON.stringify(p));
		return f;
	};
	const BERT_8 = policy({ dp: { families: { bert: { required: true, maxEpsilon: 8 } } } });

	it("passes an honest claim within the family's limit: exit 0, the figures in one line", async () => {
		const r = await ftguard([
			"dp",
			"check",
			artefact({ ...declaration, dp: { ...declaration.dp, epsilon: 2.6 } }),
			"--policy",
			BERT_8,
		]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("DP-SGD: ε = 2.597 at δ = 0.00001 (RDP order 8.1)");
		expect(r.stdout).toContain("policy: required, maxEpsilon 8, maxDelta 0.00001 (family bert)");
		expect(r.stdout).toMatch(/\npass\n$/);
	});

	it("exit 1 with the problem for an understated claim, a missing declaration, a malformed one", async () => {
		const under = await ftguard([
			"dp",
			"check",
			artefact({ dp: { ...declaration.dp, epsilon: 1 } }),
			"--policy",
			BERT_8,
			"--json",
		]);
		expect(under.code).toBe(1);
		expect(under.json()).toMatchObject({
			pass: false,
			dp: { problems: ["the claimed ε 1 understates the run: ftguard's RDP accountant gives ε 2.597 at δ 0.00001"] },
		});
		const none = await ftguard(["dp", "check", artefact(), "--policy", BERT_8]);
		expect(none.code).toBe(1);
		expect(none.stdout).toContain(
			"problem: DP-SGD training is required for family bert but the artefact declares none",
		);
		const bad = await ftguard(["dp", "check", artefact('{"dp": {"noise_multiplier": 1.1}}')]);
		expect(bad.code).toBe(1);
		expect(bad.stdout).toMatch(/problem: training metadata: ftguard-training\.json: dp\.noiseMultiplier/);
	});

	it("--family adds a family to the directory's, and the strictest limit applies", async () => {
		const p = policy({ dp: { families: { bert: { maxEpsilon: 8 }, medical: { maxEpsilon: 1 } } } });
		const r = await ftguard(["dp", "check", artefact(declaration), "--policy", p, "--family", "medical", "--json"]);
		expect(r.code).toBe(1);
		expect(r.json()).toMatchObject({ dp: { maxEpsilon: 1, families: ["bert", "medical"] } });
	});

	it("a config.json that transformers loads but JSON.parse does not, or that names no family, cannot dodge a family's limit", async () => {
		const p = policy({ dp: { families: { bert: { required: true, maxEpsilon: 1 } } } });
		for (const config of ['{"model_type": "bert", "initializer_range": NaN}', '{"model_type": "bert",', "{}"]) {
			const dir = artefact(declaration);
			writeFileSync(join(dir, "config.json"), config);
			const r = await ftguard(["dp", "check", dir, "--policy", p, "--json"]);
			expect(r.code, config).toBe(1);
			expect(r.json(), config).toMatchObject({ dp: { required: true, maxEpsilon: 1, families: ["bert"] } });
		}
	});

	it("exit 2 with one line when it cannot check: no such path, a policy with a misspelt key", async () => {
		const missing = await ftguard(["dp", "check", join(tmpdir(), "ftguard-no-such-dir-x")]);
		expect(missing.code).toBe(2);
		expect(missing.stderr.trim().split("\n")).toHaveLength(1);
		const misspelt = await ftguard([
			"dp",
			"check",
			artefact(declaration),
			"--policy",
			policy({ dp: { maxEpsilion: 8 } }),
		]);
		expect(misspelt.code).toBe(2);
		expect(misspelt.stderr).toMatch(/USAGE: .*maxEpsilion/);
	});
});
