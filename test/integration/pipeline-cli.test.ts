/**
 * `ftguard pipeline --demo --once`, run as a user runs it (the published bin, bundled CLI): the bundled examples
 * through the whole local pipeline, backdoor job included, and only the signed clean checkpoint promoted.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ftguard } from "../helpers/cli";

describe("ftguard pipeline", () => {
	it("--demo --once --json: every verdict as expected, only the clean checkpoint PROMOTABLE, exit 0", async () => {
		const cwd = mkdtempSync(join(tmpdir(), "ftguard-pipeline-cli-"));
		const r = await ftguard(["pipeline", "--demo", "--once", "--json", "--port", "0"], { cwd });
		expect(r.code, r.stderr).toBe(0);
		const doc = r.json() as {
			ok: boolean;
			endpoint: string;
			results: { name: string; status: string; reasons: string[]; ok: boolean; seconds: number }[];
		};
		expect(doc.ok).toBe(true);
		expect(doc.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
		const byName = Object.fromEntries(doc.results.map((x) => [x.name, x]));
		expect(Object.keys(byName).sort()).toEqual(["backdoor", "clean", "pickle", "tampered", "wrong-signer"]);
		expect(doc.results.filter((x) => x.status === "PROMOTABLE").map((x) => x.name)).toEqual(["clean"]);
		expect(byName.tampered?.reasons.join("\n")).toMatch(/^signature: DIGEST_MISMATCH/m);
		expect(byName.pickle?.reasons.join("\n")).toMatch(/^files: .*pytorch_model\.bin/m);
		expect(byName.backdoor?.reasons).toEqual([
			expect.stringMatching(/^backdoor: suspect \(class 5: anomaly index [\d.]+, trigger L1 [\d.]+\)$/),
		]);
		expect(doc.results.every((x) => x.ok)).toBe(true);
		expect(r.stderr).toContain(`S3 endpoint ${doc.endpoint}`);
		// the handlers' EMF metrics, in the local log: one promotion, four quarantines, and no scan error — the
		// detected backdoor is a finding (it reaches decide as the Batch task's error, but its report says suspect)
		const emf = readFileSync(join(cwd, "ftguard-pipeline.log"), "utf8")
			.split("\n")
			.filter((l) => l.includes('"_aws"'))
			.map((l) => JSON.parse(l) as Record<string, unknown>);
		const total = (name: string) =>
			emf.reduce((n, m) => n + (typeof m[name] === "number" ? (m[name] as number) : 0), 0);
		expect(total("scan_promoted_total")).toBe(1);
		expect(total("scan_quarantined_total")).toBe(4);
		expect(total("scan_errors_total")).toBe(0);
		// the batch job's EMF lines (its stdout) join them, not the terminal's output
		expect(total("neural_cleanse_anomaly_index")).toBeGreaterThan(2);
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
