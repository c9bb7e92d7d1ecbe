/** `ftguard dp epsilon` as a planner or a CI gate runs it: output, JSON shape, exit codes. */
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
