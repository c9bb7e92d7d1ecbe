/**
 * Keras 2 HDF5 models. The fixtures are written with h5py by
 * test/fixtures/formats/make_h5_fixtures.py the way Keras 2's save_model_to_hdf5
 * writes the root attributes (and read back there with h5py).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats/index";
import { kerasConfigFindings } from "../../../lib/core/formats/keras";
import { kerasH5NamedScanner, kerasH5Scanner } from "../../../lib/core/formats/keras-h5";
import { chooseScanner } from "../../../lib/core/formats/scan";
import { BufferSource } from "../../../lib/core/formats/source";
import { type ScanResult, verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, mutate, mutationArb } from "../../fixtures/formats/fuzz";

const DIR = join(__dirname, "../../fixtures/formats/keras");
const fx = (n: string) => readFileSync(join(DIR, n));

async function scan(bytes: Buffer, name = "model.h5"): Promise<ScanResult & { read: number }> {
	const source = new BufferSource(bytes);
	const r = await kerasH5Scanner.scan({ source, name, path: `/${name}`, policy: { allowPickle: false } });
	return { ...r, read: source.bytesRead };
}

const SAFE = ["keras2-benign.h5", "keras2-benign-fixed.h5", "keras2-weights-only.h5"];
const LAMBDA: [string, string][] = [
	["keras2-lambda.h5", "layers[1]"], // Keras 2 code under h5py 3: variable-length ASCII string
	["keras2-lambda-fixed.h5", "layers[1]"], // h5py 2's fixed-length string
	["keras2-lambda-str.h5", "layers[1]"], // variable-length UTF-8 string
	["keras2-lambda-userblock.h5", "layers[1]"], // superblock after a 512-byte user block
	["keras2-lambda-v3.h5", "layers[1]"], // libver='latest': superblock v3, OHDR headers
	["keras2-lambda-large.h5", "layers[80]"], // ~40 KiB config in a continuation block
];
const ALL = [...SAFE, ...LAMBDA.map(([n]) => n), "keras2-lambda-dense-attrs.h5"];

/** Offset of the root group's object header (superblock v0 at 0, 8-byte offsets). */
function rootHeader(b: Buffer): number {
	return Number(b.readBigUInt64LE(24 + 5 * 8));
}

describe("keras-h5", () => {
	it.each(ALL)("the engine picks keras-h5 for %s by content, whatever its name", (name) => {
		const b = fx(name);
		const options = { ...defaultScanOptions(), policy: { allowPickle: false } };
		expect(chooseScanner(b.subarray(0, 65536), "weights.bin", b.length, options)?.format).toBe("keras-h5");
	});

	it.each(SAFE)("%s (no Lambda, or no model_config at all) is safe", async (name) => {
		const r = await scan(fx(name));
		expect(r).toMatchObject({ findings: [] });
		expect(r.malformed).toBeUndefined();
		expect(verdictOf(r)).toBe("safe");
	});

	it.each(LAMBDA)("%s: the Lambda layer is keras-lambda (critical) at model_config $.config.%s", async (name, at) => {
		const r = await scan(fx(name));
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings).toEqual([
			{
				id: "keras-lambda",
				severity: "critical",
				message: "Lambda layer holds Python bytecode that runs when the model is loaded or called",
				location: `model_config $.config.${at}`,
			},
		]);
	});

	it("uses the .keras scanner's rules on the config (same ids for the same config)", async () => {
		const lambdaKeras = JSON.parse(
			JSON.stringify({ class_name: "Sequential", config: { layers: [{ class_name: "Lambda", config: {} }] } }),
		);
		expect(kerasConfigFindings(lambdaKeras, "model_config").map((f) => f.id)).toEqual(["keras-lambda"]);
	});

	it("dense attribute storage (a >64 KiB fixed-length config, new file format) is not followed: unsafe", async () => {
		const r = await scan(fx("keras2-lambda-dense-attrs.h5"));
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings).toMatchObject([{ id: "keras-h5-config-unreadable", severity: "high" }]);
		expect(r.findings[0]?.message).toMatch(/dense storage/);
	});

	it("reads the root group's header and the config, not the weights", async () => {
		const r = await scan(fx("keras2-weights-only.h5"));
		expect(r.read).toBeLessThan(1024);
		const big = await scan(fx("keras2-lambda-large.h5"));
		expect(big.read).toBeLessThan(fx("keras2-lambda-large.h5").length - 8000);
	});

	it("finds the superblock after a user block larger than the engine's head (named .h5)", async () => {
		const inner = fx("keras2-lambda.h5");
		// an HDF5 file with a 128 KiB user block: addresses are relative to the base address (128 KiB)
		const b = Buffer.concat([Buffer.alloc(128 * 1024, 0x20), inner]);
		b.writeBigUInt64LE(BigInt(128 * 1024), 128 * 1024 + 24); // base address
		b.writeBigUInt64LE(BigInt(b.length), 128 * 1024 + 40); // end-of-file address (absolute)
		const options = { ...defaultScanOptions(), policy: { allowPickle: false } };
		expect(chooseScanner(b.subarray(0, 65536), "model.h5", b.length, options)).toBe(kerasH5NamedScanner);
		expect(kerasH5Scanner.detect(b.subarray(0, 65536), "model.h5", b.length)).toBe(false);
		const r = await kerasH5NamedScanner.scan({
			source: new BufferSource(b),
			name: "model.h5",
			path: "/model.h5",
			policy: { allowPickle: false },
		});
		expect(r.findings.map((f) => f.id)).toEqual(["keras-lambda"]);
	});

	it("a .h5 file that is not HDF5 is malformed, not unknown", async () => {
		const r = await kerasH5NamedScanner.scan({
			source: new BufferSource(Buffer.from("not hdf5 at all")),
			name: "x.h5",
			path: "/x.h5",
			policy: { allowPickle: false },
		});
		expect(verdictOf(r)).toBe("malformed");
	});

	it("every truncation is refused (H5Fopen: truncated file), never safe", async () => {
		for (const name of ["keras2-benign.h5", "keras2-lambda.h5", "keras2-lambda-v3.h5"]) {
			const b = fx(name);
			for (let cut = 0; cut < b.length; cut += 97) {
				const r = await scan(b.subarray(0, cut));
				expect(verdictOf(r), `${name} cut at ${cut}`).not.toBe("safe");
			}
		}
	});

	it("versions and structures it does not follow are unsafe (config unreadable), broken ones too", async () => {
		const b = Buffer.from(fx("keras2-lambda.h5"));
		const root = rootHeader(b);
		const unknownVersion = Buffer.from(b);
		unknownVersion[root] = 7;
		const r1 = await scan(unknownVersion);
		expect(verdictOf(r1)).toBe("unsafe");
		expect(r1.findings[0]).toMatchObject({ id: "keras-h5-config-unreadable", severity: "high" });

		const superblockVersion = Buffer.from(b);
		superblockVersion[8] = 4;
		expect(verdictOf(await scan(superblockVersion))).toBe("unsafe");

		const offsets16 = Buffer.from(b);
		offsets16[13] = 16;
		expect(verdictOf(await scan(offsets16))).toBe("unsafe");

		// the global heap collection that holds the variable-length config, its signature broken
		const gcol = b.indexOf("GCOL");
		const noHeap = Buffer.from(b);
		noHeap.write("XCOL", gcol, "latin1");
		const r2 = await scan(noHeap);
		expect(verdictOf(r2)).toBe("unsafe");
		// model_config and training_config both live in that heap
		expect(r2.findings.map((f) => [f.id, f.severity])).toEqual([
			["keras-h5-config-unreadable", "high"],
			["keras-h5-config-unreadable", "high"],
		]);
	});

	it("an unreadable training_config does not hide model_config's Lambda", async () => {
		const b = Buffer.from(fx("keras2-lambda-fixed.h5"));
		// version-1 attribute message: 8-byte prefix, name, datatype, dataspace (each padded to 8), value
		const msg = b.indexOf("training_config\0") - 8;
		const pad8 = (n: number) => Math.ceil(n / 8) * 8;
		const value =
			msg + 8 + pad8(b.readUInt16LE(msg + 2)) + pad8(b.readUInt16LE(msg + 4)) + pad8(b.readUInt16LE(msg + 6));
		b.writeBigUInt64LE(0x7fff_ffff_ffffn, value + 4); // its global heap address, past the end
		const r = await scan(b);
		expect(r.findings.map((f) => [f.id, f.severity])).toEqual([
			["keras-h5-config-unreadable", "high"],
			["keras-lambda", "critical"],
		]);
	});

	it("a config Keras cannot parse is malformed; NaN and Infinity (Python's json) are not a reason", async () => {
		const b = Buffer.from(fx("keras2-lambda-fixed.h5"));
		const at = b.indexOf('{"class_name": "Sequential"');
		const bad = Buffer.from(b);
		bad[at] = 0x5b; // "[" : no longer JSON
		expect(verdictOf(await scan(bad))).toBe("malformed");
		const nan = Buffer.from(b);
		const field = nan.indexOf('"use_bias": true', at);
		nan.write('"use_bias": NaN ', field, "latin1"); // same length
		const r = await scan(nan);
		expect(r.findings.map((f) => f.id)).toEqual(["keras-lambda"]);
	});

	it("fuzz: no mutant makes the reader throw (its catch-all, scan-incomplete, never fires)", async () => {
		for (const name of ALL) {
			const bytes = fx(name);
			await fc.assert(
				fc.asyncProperty(mutationArb(bytes.length), async (muts) => {
					const r = await scan(mutate(bytes, muts));
					expect(r.findings.filter((f) => f.id === "scan-incomplete")).toEqual([]);
				}),
				{ numRuns: Number(process.env.FUZZ_RUNS ?? 0) || 100 },
			);
		}
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(
			kerasH5Scanner,
			ALL.map((n) => ({ name: n, bytes: fx(n) })),
			{ runs: 200 },
		);
	});
});
