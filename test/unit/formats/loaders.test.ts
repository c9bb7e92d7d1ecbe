/**
 * Issue 13's evidence: files written by the real serializers, each loaded by its real loaders in a sandbox by
 * test/fixtures/loaders/make_loader_fixtures.py (no network, own temporary directory, a payload that only creates a
 * marker file). expected.json records, per file and per loader, whether the marker appeared. These tests hold
 * ftguard to it: no file that runs code under any loader is ever `safe`, under either policy, alone or in an
 * artefact; the benign counterparts are safe under the policy that should accept them — inert files under both,
 * pickle-bearing files only under allowPickle and only where torch's weights_only loader loads them.
 *
 * Regenerate (Debian's python3-torch 1.13 and friends; the tests never run Python):
 *   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 test/fixtures/loaders/make_loader_fixtures.py
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats/index";
import { type FileReport, type ScanReport, scanPaths } from "../../../lib/core/formats/scan";

const ROOT = join(__dirname, "../../fixtures/loaders");
const FILES = join(ROOT, "files");

type Expectation = "safe" | "not-safe";
type Policy = "default" | "allowPickle";
interface Rec {
	class: string;
	payload: boolean;
	executes: boolean;
	weightsOnlyLoads: boolean | null;
	loaders: Record<string, string>;
	expect: Record<Policy, Expectation>;
	note: string;
}
const EXPECTED = JSON.parse(readFileSync(join(ROOT, "expected.json"), "utf8")) as {
	sandbox: string;
	versions: Record<string, string>;
	files: Record<string, Rec>;
};
const ALL = Object.entries(EXPECTED.files);
const POLICIES: Policy[] = ["default", "allowPickle"];

/**
 * Cases the engine does not pass yet (`<file> [<policy>]`, `<file> [<policy>, artefact]`): run with `it.fails`,
 * so each one that starts passing is reported and must be taken out. TEMPORARY — this set is to be emptied.
 */
const KNOWN_GAPS = new Set<string>([]);

const options = (policy: Policy) => ({ ...defaultScanOptions(), policy: { allowPickle: policy === "allowPickle" } });

const cache = new Map<string, Promise<ScanReport>>();
function scanCached(target: string, policy: Policy): Promise<ScanReport> {
	const key = `${policy}\0${target}`;
	let r = cache.get(key);
	if (!r) {
		r = scanPaths([target], options(policy));
		cache.set(key, r);
	}
	return r;
}

/** The file's report, scanned as it is shipped: alone, or (a path with a folder) within its artefact folder. */
async function reportOf(rel: string, policy: Policy): Promise<FileReport> {
	const slash = rel.indexOf("/");
	if (slash < 0) {
		const r = await scanCached(join(FILES, rel), policy);
		return r.files[0] as FileReport;
	}
	const dir = join(FILES, rel.slice(0, slash));
	const r = await scanCached(dir, policy);
	const f = r.files.find((x) => x.path === join(dir, rel.slice(slash + 1)));
	if (!f) throw new Error(`${rel} not in the scan of ${dir}`);
	return f;
}

const describeReport = (f: FileReport) =>
	`${f.format} ${f.verdict}${f.malformed ? ` (malformed: ${f.malformed})` : ""}: ${JSON.stringify(
		f.findings.map((x) => `${x.id}/${x.severity}: ${x.message}`),
	)}`;

const runsCode = (r: Rec) =>
	Object.entries(r.loaders)
		.filter(([, v]) => v === "executes")
		.map(([k]) => k)
		.join(", ");

const caseIt = (key: string) => (KNOWN_GAPS.has(key) ? it.fails : it);

describe("loader fixtures (expected.json, written and confirmed by make_loader_fixtures.py)", () => {
	it("cover every class, confirmed in a sandbox", () => {
		expect(EXPECTED.versions.torch).toMatch(/^1\.13/);
		expect(EXPECTED.sandbox).toMatch(/unshare/);
		const classes = new Set(ALL.map(([, r]) => r.class));
		for (const c of ["pickle-any-name", "pickle-prefix", "compressed", "polyglot", "torch", "yaml", "jsonpickle"])
			expect(classes).toContain(c);
		expect(ALL.filter(([, r]) => r.executes).length).toBeGreaterThanOrEqual(55);
		expect(ALL.filter(([, r]) => !r.payload).length).toBeGreaterThanOrEqual(30);
		for (const [rel, r] of ALL) {
			// "executes" only where a marker appeared; a payload no loader here ran says why (loader not installed)
			expect(r.executes, rel).toBe(Object.values(r.loaders).includes("executes"));
			if (r.payload && !r.executes)
				expect(
					Object.values(r.loaders).some((v) => v.startsWith("not-run")),
					rel,
				).toBe(true);
			if (!r.payload) expect(r.executes, `${rel} is benign`).toBe(false);
		}
	});
});

const payloads = ALL.filter(([, r]) => r.executes || r.payload);
const benign = ALL.filter(([, r]) => !r.executes && !r.payload);

describe("a file that runs code under some loader is never safe", () => {
	for (const [rel, r] of payloads)
		for (const policy of POLICIES) {
			const key = `${rel} [${policy}]`;
			caseIt(key)(key, async () => {
				const f = await reportOf(rel, policy);
				const why = `${r.class}; runs code under: ${runsCode(r) || "(not confirmed here)"}; ftguard: ${describeReport(f)}`;
				expect(f.verdict, why).not.toBe("safe");
			});
		}
});

describe("an artefact holding such a file is not safe", () => {
	// the file beside an ordinary model's config and weights, scanned as a directory
	const config = join(FILES, "hf-model/config.json");
	const weights = join(FILES, "hf-model/model.safetensors");
	const artefacts = new Map<string, string>();
	const artefactOf = (rel: string) => {
		let d = artefacts.get(rel);
		if (d === undefined) {
			d = mkdtempSync(join(tmpdir(), "ftguard-loaders-"));
			copyFileSync(join(FILES, rel), join(d, basename(rel)));
			if (basename(rel) !== "config.json") copyFileSync(config, join(d, "config.json"));
			copyFileSync(weights, join(d, "model.safetensors"));
			artefacts.set(rel, d);
		}
		return d;
	};
	afterAll(() => {
		for (const d of artefacts.values()) rmSync(d, { recursive: true, force: true });
	});
	for (const [rel, r] of payloads)
		for (const policy of POLICIES) {
			const key = `${rel} [${policy}, artefact]`;
			caseIt(key)(key, async () => {
				const dir = rel.includes("/") ? join(FILES, rel.slice(0, rel.indexOf("/"))) : artefactOf(rel);
				const report = await scanPaths([dir], options(policy));
				const f = report.files.find(
					(x) => x.path === join(dir, rel.includes("/") ? rel.slice(rel.indexOf("/") + 1) : basename(rel)),
				);
				expect(f, `${rel} in the scan of its artefact`).toBeDefined();
				const why = `${r.class}; runs code under: ${runsCode(r) || "(not confirmed here)"}; ftguard: ${describeReport(f as FileReport)}`;
				expect(f?.verdict, why).not.toBe("safe");
				expect(
					report.files.every((x) => x.verdict === "safe"),
					why,
				).toBe(false);
			});
		}
});

describe("benign counterparts are safe under the policy that should accept them", () => {
	for (const [rel, r] of benign)
		for (const policy of POLICIES) {
			const want = r.expect[policy];
			const key = `${rel} [${policy}]`;
			const title = `${key}: ${want}${r.weightsOnlyLoads === null ? "" : ` (weights_only ${r.weightsOnlyLoads ? "loads it" : "refuses it"})`}`;
			caseIt(key)(title, async () => {
				const f = await reportOf(rel, policy);
				const why = `${r.class}: ${r.note}; ftguard: ${describeReport(f)}`;
				if (want === "safe") expect(f.verdict, why).toBe("safe");
				else {
					expect(f.verdict, why).not.toBe("safe");
					// under the default policy a pickle-bearing file is refused as a pickle, not for anything else
					if (policy === "default" && r.expect.allowPickle === "safe")
						expect(
							f.findings.map((x) => x.id),
							why,
						).toContain("pickle-forbidden");
				}
			});
		}
});
