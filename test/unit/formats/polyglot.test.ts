/**
 * Files that are two formats at once (Scanner.alsoIn, ScanOptions.polyglots): a pickle at byte 0 and a Keras 2
 * HDF5 model after a user block, written by test/fixtures/formats/make_h5_fixtures.py with h5py and checked there
 * with both h5py and pickle. Before the polyglot pass the engine judged each by the format it detected first: the
 * payload pickle in a benign model's user block was `safe`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats/index";
import { type FileReport, scanPaths, scanSource } from "../../../lib/core/formats/scan";
import { BufferSource } from "../../../lib/core/formats/source";

const DIR = join(__dirname, "../../fixtures/formats/keras");

async function scanFixture(name: string, allowPickle: boolean): Promise<FileReport> {
	const r = await scanPaths([join(DIR, name)], { ...defaultScanOptions(), policy: { allowPickle } });
	return r.files[0] as FileReport;
}

const ids = (f: FileReport) => f.findings.map((x) => x.id);

describe("polyglot files", () => {
	it("a payload pickle in a benign HDF5 model's user block (.bin): detected as HDF5, and unsafe as the pickle it is", async () => {
		const f = await scanFixture("polyglot-payload-pickle-benign-h5.bin", true);
		expect(f.format).toBe("keras-h5");
		expect(f.verdict).toBe("unsafe");
		expect(f.findings).toContainEqual(
			expect.objectContaining({
				id: "dangerous-global",
				message: expect.stringMatching(/^read as pickle: .*posix\.system/),
			}),
		);
	});

	it("a benign pickle with a Lambda model 128 KiB in (past the detection head): unsafe as the HDF5 it also is", async () => {
		const f = await scanFixture("polyglot-pickle-lambda-h5-far.pkl", true);
		expect(f.format).toBe("pickle");
		expect(f.verdict).toBe("unsafe");
		expect(f.findings).toContainEqual(
			expect.objectContaining({ id: "keras-lambda", message: expect.stringMatching(/^read as keras-h5: /) }),
		);
		// found with a few small reads past the head, not by reading the file
		expect(f.bytesRead).toBeLessThan(f.size);
	});

	it("a file nothing claims by its head, with a Lambda model 128 KiB in: scanned as the HDF5 h5py finds there", async () => {
		const bytes = Buffer.from(readFileSync(join(DIR, "polyglot-pickle-lambda-h5-far.pkl")));
		bytes.fill(0, 0, 1024); // no pickle, no magic: the head says nothing
		const f = await scanSource(
			new BufferSource(bytes),
			{ displayPath: "weights.raw", name: "weights.raw", path: "/weights.raw", modelDir: undefined },
			{ ...defaultScanOptions(), policy: { allowPickle: true } },
		);
		expect(f.format).toBe("keras-h5");
		expect(ids(f)).toEqual(["keras-lambda"]);
	});

	it("both halves benign: safe where pickles are allowed, pickle-forbidden where not", async () => {
		const allowed = await scanFixture("polyglot-benign-pickle-benign-h5.pkl", true);
		expect(allowed).toMatchObject({ format: "keras-h5", verdict: "safe", findings: [] });
		const refused = await scanFixture("polyglot-benign-pickle-benign-h5.pkl", false);
		expect(refused.verdict).toBe("unsafe");
		expect(ids(refused)).toEqual(["pickle-forbidden"]);
	});

	it("an .h5 model with a user block: only its own findings (no pickle pass for a name pickle.load is not used on)", async () => {
		const f = await scanFixture("keras2-lambda-userblock.h5", false);
		expect(f.format).toBe("keras-h5");
		expect(ids(f)).toEqual(["keras-lambda"]);
	});
});
