import { afterEach, describe, expect, it, vi } from "vitest";
import { emitMetrics } from "../../../lib/aws/metrics";
import { MetricName } from "../../../lib/core/pipeline/names";

afterEach(() => vi.restoreAllMocks());

describe("emitMetrics", () => {
	it("writes one EMF document in namespace ftguard with exactly the service=ftguard dimension the alarms match", () => {
		const lines: string[] = [];
		for (const m of ["log", "info"] as const)
			vi.spyOn(console, m).mockImplementation((s: unknown) => void lines.push(String(s)));
		vi.spyOn(process.stdout, "write").mockImplementation((s: unknown) => {
			lines.push(String(s));
			return true;
		});
		emitMetrics([
			{ name: MetricName.SCAN_QUARANTINED_TOTAL, value: 1 },
			{ name: MetricName.SCAN_ERRORS_TOTAL, value: 1 },
		]);
		const emf = lines.map((l) => JSON.parse(l)).find((d) => d._aws);
		expect(emf._aws.CloudWatchMetrics).toEqual([
			{
				Namespace: "ftguard",
				Dimensions: [["service"]],
				Metrics: [
					{ Name: "scan_quarantined_total", Unit: "Count" },
					{ Name: "scan_errors_total", Unit: "Count" },
				],
			},
		]);
		expect(emf).toMatchObject({ service: "ftguard", scan_quarantined_total: 1, scan_errors_total: 1 });
	});
});
