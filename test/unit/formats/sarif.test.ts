import { describe, expect, it } from "vitest";
import { toSarif } from "../../../lib/core/formats/sarif";
import type { ScanReport } from "../../../lib/core/formats/scan";

const report: ScanReport = {
	files: [
		{
			path: "model dir/evil.pkl",
			format: "pickle",
			verdict: "unsafe",
			findings: [
				{ id: "dangerous-global", severity: "critical", message: "posix.system", location: "opcode 0x2" },
				{ id: "pickle-forbidden", severity: "high", message: "pickle can run code on load" },
			],
			size: 10,
			bytesRead: 10,
		},
		{
			path: "m/bad.safetensors",
			format: "safetensors",
			verdict: "malformed",
			findings: [],
			malformed: "InvalidOffset",
			size: 9,
			bytesRead: 9,
		},
		{ path: "m/ok.json", format: "hf-config", verdict: "safe", findings: [], size: 2, bytesRead: 2 },
	],
	summary: { files: 3, safe: 1, unsafe: 1, malformed: 1, unknown: 0, bytesRead: 21 },
};

describe("toSarif", () => {
	const sarif = toSarif(report, "1.2.3") as {
		version: string;
		runs: {
			tool: {
				driver: { name: string; version: string; rules: { id: string; defaultConfiguration: { level: string } }[] };
			};
			results: {
				ruleId: string;
				level: string;
				locations: {
					physicalLocation: { artifactLocation: { uri: string } };
					logicalLocations?: { fullyQualifiedName: string }[];
				}[];
			}[];
		}[];
	};
	const run = sarif.runs[0];

	it("is SARIF 2.1.0 from ftguard with one rule per finding id", () => {
		expect(sarif.version).toBe("2.1.0");
		expect(run?.tool.driver).toMatchObject({ name: "ftguard", version: "1.2.3" });
		expect(run?.tool.driver.rules.map((r) => r.id).sort()).toEqual([
			"dangerous-global",
			"malformed",
			"pickle-forbidden",
		]);
	});

	it("has one result per finding and per malformed file, none for safe files", () => {
		expect(run?.results.map((r) => r.ruleId)).toEqual(["dangerous-global", "pickle-forbidden", "malformed"]);
		expect(run?.results.map((r) => r.level)).toEqual(["error", "error", "error"]);
	});

	it("points at the file (URI-encoded) and the place inside it", () => {
		const first = run?.results[0]?.locations[0];
		expect(first?.physicalLocation.artifactLocation.uri).toBe("model%20dir/evil.pkl");
		expect(first?.logicalLocations?.[0]?.fullyQualifiedName).toBe("opcode 0x2");
	});
});
