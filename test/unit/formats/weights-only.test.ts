import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pickleScanner } from "../../../lib/core/formats/pickle-scanner";
import { pytorchLegacyScanner, pytorchZipScanner } from "../../../lib/core/formats/pytorch";
import { pytorchTarScanner } from "../../../lib/core/formats/pytorch-tar";
import { BufferSource } from "../../../lib/core/formats/source";
import { type Scanner, type ScanResult, verdictOf } from "../../../lib/core/formats/types";
import {
	allowedGlobals,
	checkWeightsOnly,
	type TorchVersion,
	withModelledVersions,
} from "../../../lib/core/formats/weights-only";
import { entryDataOffset, listZip } from "../../../lib/core/formats/zip";

/**
 * Differential evidence: test/fixtures/pickle/make_weights_only_fixtures.py ran torch 1.13's own loader on every
 * file (expected.json); these tests hold ftguard's --allow-pickle verdict to it, file by file.
 */
const DIR = join(__dirname, "../../fixtures/pickle");
interface Rec {
	expected: "safe" | "unsafe" | "malformed";
	torch_1_13: "safe" | "unsafe" | "malformed";
	torch_load: { outcome: string; error?: string };
	runs_code?: boolean;
	override?: { scope: "2.x" | "all"; reason: string };
}
const EXPECTED = JSON.parse(readFileSync(join(DIR, "weights-only/expected.json"), "utf8")) as {
	torch: string;
	allowed_globals: string[];
	files: Record<string, Rec>;
};
const FILES = Object.entries(EXPECTED.files);
const SCANNERS: Scanner[] = [pytorchTarScanner, pytorchLegacyScanner, pytorchZipScanner, pickleScanner];

async function scan(rel: string, allowPickle: boolean): Promise<ScanResult & { format: string; read: number }> {
	const bytes = readFileSync(join(DIR, rel));
	const s = SCANNERS.find((x) => x.detect(bytes.subarray(0, 65536), rel, bytes.length));
	if (!s) throw new Error(`no scanner claims ${rel}`);
	const source = new BufferSource(bytes);
	const r = await s.scan({ source, name: rel, path: `/${rel}`, policy: { allowPickle } });
	return { ...r, format: s.format, read: source.bytesRead };
}

describe("--allow-pickle is torch's weights_only loader (expected.json, torch 1.13)", () => {
	it("covers the ordinary checkpoints, random-tensor checkpoints, refusals and payloads", () => {
		expect(EXPECTED.torch).toMatch(/^1\.13/);
		expect(FILES.length).toBeGreaterThanOrEqual(80);
		expect(FILES.filter(([, r]) => r.runs_code).length).toBeGreaterThanOrEqual(7);
		expect(FILES.filter(([n]) => n.includes("random-1000")).length).toBeGreaterThanOrEqual(4);
		// Every override says why; the "2.x" ones are torch 1.13 refusals torch 2.x's rule loads.
		for (const [, r] of FILES) if (r.override) expect(r.override.reason.length).toBeGreaterThan(10);
	});

	it.each(FILES)("%s: the verdict is expected.json's", async (rel, rec) => {
		const r = await scan(rel, true);
		expect(verdictOf(r), JSON.stringify(r.findings)).toBe(rec.expected);
	});

	it.each(FILES)("%s: the torch 1.13 model alone gives torch 1.13's verdict", async (rel, rec) => {
		const r = await withModelledVersions(["1.13"], () => scan(rel, true));
		expect(verdictOf(r), JSON.stringify(r.findings)).toBe(rec.torch_1_13);
	});

	it.each(FILES)("%s: refused (pickle-forbidden) without --allow-pickle", async (rel) => {
		const r = await scan(rel, false);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings.map((f) => f.id)).toContain("pickle-forbidden");
	});

	it.each(FILES.filter(([, r]) => r.runs_code))(
		"%s ran code under torch.load: never safe, posix.system named",
		async (rel) => {
			for (const allow of [true, false]) {
				const r = await scan(rel, allow);
				expect(verdictOf(r)).toBe("unsafe");
				expect(r.findings.some((f) => f.id === "dangerous-global" && f.message.includes("posix.system"))).toBe(true);
			}
		},
	);

	it.each(FILES.filter(([n]) => /random-(1000|200)/.test(n)))(
		"%s: tensor bytes are never read as pickles (safe even with every storage a payload's opcodes)",
		async (rel) => {
			const r = await scan(rel, true);
			expect(r.findings).toEqual([]);
			expect(r.malformed).toBeUndefined();
			// torch reads storages as raw bytes: fill each with the opcodes of a payload, the verdict stays safe.
			const bytes = Buffer.from(readFileSync(join(DIR, rel)));
			const evil = Buffer.from("\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.", "latin1");
			const fill = (at: number, n: number) => {
				for (let i = 0; i < n; i++) bytes[at + i] = evil[i % evil.length] as number;
			};
			let filled = 0;
			if (rel.includes("legacy")) {
				// After the five pickles: per storage an int64 count, then its bytes.
				const list = (await withModelledVersions(["1.13"], () => scan(rel, true))).findings;
				expect(list).toEqual([]);
				for (let at = bytes.length - 200 * 40; at < bytes.length; at += 40, filled++) fill(at + 8, 32);
			} else {
				const listing = await listZip(new BufferSource(bytes));
				if (typeof listing === "string") throw new Error(listing);
				for (const e of listing.entries.filter((x) => /\/data\/\d+$/.test(x.name))) {
					filled++;
					fill((await entryDataOffset(new BufferSource(bytes), e)) as number, e.compressedSize);
				}
				expect(filled).toBe(1000);
			}
			expect(filled).toBeGreaterThanOrEqual(200);
			const s = SCANNERS.find((x) => x.detect(bytes.subarray(0, 65536), rel, bytes.length)) as Scanner;
			const poisoned = await s.scan({
				source: new BufferSource(bytes),
				name: rel,
				path: `/${rel}`,
				policy: { allowPickle: true },
			});
			expect(poisoned.findings).toEqual([]);
			expect(verdictOf(poisoned)).toBe("safe");
		},
	);

	it("finds data.pkl case-insensitively, as torch's reader does (the payload in Data.Pkl ran)", async () => {
		expect(EXPECTED.files["weights-only/payload-zip-DATA-PKL.pt"]?.runs_code).toBe(true);
		const r = await scan("weights-only/payload-zip-DATA-PKL.pt", true);
		expect(r.findings.find((f) => f.id === "weights-only-refused")?.location).toMatch(/Data\.Pkl/);
	});
});

/** Pickle bytes from a list of opcode strings / bytes. */
const P = (...parts: (string | number[])[]): Buffer =>
	Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))));
const outcome = (buf: Buffer, versions: TorchVersion[], mode: "zip" | "none" | "legacy" | "tar" = "zip") =>
	checkWeightsOnly(buf, { mode, versions }).outcome;

describe("the weights_only model's rules (torch/_weights_only_unpickler.py)", () => {
	const OD = "ccollections\nOrderedDict\n";
	it("looks globals up by exact name; 2.x maps Python 2 names and blocks os / posix / sys / nt", () => {
		expect(outcome(P(OD, ").", []), ["1.13"])).toBe("loaded");
		expect(outcome(P("c__builtin__\nset\n)R."), ["1.13"])).toBe("refused");
		expect(outcome(P("c__builtin__\nset\n)R."), ["2.x"])).toBe("loaded");
		const r = checkWeightsOnly(P("cposix\nsystem\n."), { mode: "zip" });
		expect(r.outcome).toBe("refused");
		expect(r.global).toEqual({ module: "posix", name: "system" });
		expect(r.byVersion["2.x"]?.reason).toMatch(/blocked/);
		// A version that loads it ends the check: no later version is run (nothing beats "loaded").
		expect(Object.keys(checkWeightsOnly(P(OD, ")."), { mode: "zip" }).byVersion)).toEqual(["1.13"]);
		expect(Object.keys(checkWeightsOnly(P("c__builtin__\nset\n)R."), { mode: "zip" }).byVersion)).toEqual([
			"1.13",
			"2.x",
		]);
		// A GLOBAL cut short by the end of the data: readline() returns the rest, which is then looked up (and refused).
		expect(outcome(P("ctorch\nSize"), ["1.13"])).toBe("refused");
	});

	it("calls only allowed globals (REDUCE), instantiates only Parameter (1.13) or allowed classes (2.x)", () => {
		expect(outcome(P(OD, ")R."), ["1.13"])).toBe("loaded");
		expect(outcome(P("]", ")R."), ["1.13", "2.x"])).toBe("refused");
		expect(outcome(P(OD, ")", [0x81], "."), ["1.13"])).toBe("refused");
		expect(outcome(P(OD, ")", [0x81], "."), ["2.x"])).toBe("loaded");
		expect(outcome(P("ctorch\nfloat32\n)R."), ["1.13"])).toBe("corrupt"); // a dtype is not callable
	});

	it("builds only tensors, parameters and OrderedDicts (2.x: allowed types); appends only to lists", () => {
		expect(outcome(P(OD, ")R}b."), ["1.13"])).toBe("loaded");
		expect(outcome(P("}}b."), ["1.13", "2.x"])).toBe("refused");
		expect(outcome(P("ccollections\nCounter\n)R}b."), ["2.x"])).toBe("loaded");
		expect(outcome(P("]K\x01a."), ["1.13"])).toBe("loaded");
		expect(outcome(P(OD, ")RK\x01a."), ["1.13", "2.x"])).toBe("refused");
	});

	it("1.13 sets items on anything that takes them; 2.x only on dicts", () => {
		const tensor = "ctorch\nTensor\n)R";
		expect(outcome(P(tensor, "K\x01K\x02s."), ["1.13"])).toBe("loaded");
		expect(outcome(P(tensor, "K\x01K\x02s."), ["2.x"])).toBe("refused");
		expect(outcome(P("}]K\x01s."), ["1.13", "2.x"])).toBe("corrupt"); // unhashable key
	});

	it("knows its opcode set: BINFLOAT only in 2.x, no FRAME, no text opcodes", () => {
		expect(outcome(P("G", [0, 0, 0, 0, 0, 0, 0, 0], "."), ["1.13"])).toBe("refused");
		expect(outcome(P("G", [0, 0, 0, 0, 0, 0, 0, 0], "."), ["2.x"])).toBe("loaded");
		expect(outcome(P([0x80, 4, 0x95, 1, 0, 0, 0, 0, 0, 0, 0], "N."), ["1.13", "2.x"])).toBe("refused");
		expect(outcome(P("(lp0\n."), ["1.13", "2.x"])).toBe("refused");
		expect(outcome(P([0x80, 9], "N."), ["1.13"])).toBe("loaded"); // PROTO is read and ignored
	});

	it("checks persistent ids as each version and load path does", () => {
		const storage = "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ.";
		const r = checkWeightsOnly(P(storage), { mode: "zip" });
		expect(r.outcome).toBe("loaded");
		expect(r.storages).toEqual([{ key: "0", type: "FloatStorage", numel: 2n }]);
		// 1.13's check is inverted for ints: it refuses exactly them; 2.x lets them through to persistent_load (not a tuple).
		expect(outcome(P("K\x01Q."), ["1.13"])).toBe("corrupt");
		expect(outcome(P("K\x01Q."), ["2.x"])).toBe("corrupt");
		expect(outcome(P("X\x01\x00\x00\x001Q."), ["1.13"], "tar")).toBe("loaded");
		expect(outcome(P("X\x01\x00\x00\x001Q."), ["2.x"], "tar")).toBe("corrupt");
		expect(outcome(P(storage), ["1.13"], "none")).toBe("corrupt");
		expect(outcome(P("(X\x06\x00\x00\x00moduleK\x01tQ."), ["1.13", "2.x"], "legacy")).toBe("corrupt");
	});

	it("fails as corrupt on truncation, underflow and missing memo keys", () => {
		expect(outcome(P("K"), ["1.13", "2.x"])).toBe("corrupt");
		expect(outcome(P("."), ["1.13", "2.x"])).toBe("corrupt");
		expect(outcome(P("h\x05."), ["1.13", "2.x"])).toBe("corrupt");
		expect(outcome(P("N"), ["1.13", "2.x"])).toBe("corrupt");
		expect(checkWeightsOnly(P("N"), { mode: "zip", partial: true }).outcome).toBe("incomplete");
	});

	it("allows in 1.13 exactly torch 1.13's globals (as torch listed them), and 2.x keeps all of them", () => {
		expect([...allowedGlobals("1.13")].sort()).toEqual(EXPECTED.allowed_globals);
		// 2.x rebuilds CSR tensors through _rebuild_sparse_tensor: the one 1.13 name it dropped.
		const dropped = [...allowedGlobals("1.13")].filter((g) => !allowedGlobals("2.x").has(g));
		expect(dropped).toEqual(["torch._utils._rebuild_sparse_csr_tensor"]);
		expect(allowedGlobals("2.x").has("numpy.core.multiarray._reconstruct")).toBe(false);
	});
});

describe("plain pickles under --allow-pickle", () => {
	const scanBytes = (b: Buffer) =>
		pickleScanner.scan({ source: new BufferSource(b), name: "x.pkl", path: "/x.pkl", policy: { allowPickle: true } });

	it("random bytes refused only for an opcode, that no unpickler runs to an import, are malformed, not unsafe", async () => {
		const r = await scanBytes(P([0x80, 2, 0x4b, 1, 0xff, 0x13, 0x37]));
		expect(verdictOf(r)).toBe("malformed");
		expect(r.findings).toEqual([]);
	});

	it("a benign pickle followed by a payload pickle is unsafe; one followed by garbage is safe", async () => {
		const benign = P([0x80, 2], "}q\x00.");
		const payload = P([0x80, 2], "cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
		expect(verdictOf(await scanBytes(Buffer.concat([benign, payload])))).toBe("unsafe");
		expect(verdictOf(await scanBytes(Buffer.concat([benign, P([0xff, 0xfe, 0x00])])))).toBe("safe");
	});
});
