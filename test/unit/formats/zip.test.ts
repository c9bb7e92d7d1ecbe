import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { findEntry, isZip, listZip, listZipView, readEntry, type ZipListing } from "../../../lib/core/formats/zip";
import { loadCorpus } from "../../fixtures/differential/corpus";

const DIR = join(__dirname, "../../fixtures/pickle");
const fixture = (name: string) => readFileSync(join(DIR, name));

describe("zip reader", () => {
	it("lists a torch zip from its central directory, reading little", async () => {
		const bytes = fixture("benign-training-checkpoint.pt");
		const src = new BufferSource(bytes);
		const l = await listZip(src);
		if (typeof l === "string") throw new Error(l);
		expect(isZip(bytes)).toBe(true);
		expect(l.fromLocalHeaders).toBe(false);
		expect(l.entries.map((e) => e.name)).toContain("archive/data.pkl");
		expect(l.problems).toEqual([]);
	});

	it("finds the end record behind a comment of any length", async () => {
		const bytes = fixture("benign-training-checkpoint.pt");
		const plain = await listZip(new BufferSource(bytes));
		if (typeof plain === "string") throw new Error(plain);
		// Around 1 KiB the record sits at the start of (or before) the first, small tail read.
		for (const n of [0, 1, 20, 900, 985, 990, 1000, 1002, 1003, 1010, 5000, 65535]) {
			const comment = Buffer.alloc(n, 0x20);
			const withComment = Buffer.concat([bytes, comment]);
			withComment.writeUInt16LE(n, bytes.length - 2);
			const l = await listZip(new BufferSource(withComment));
			if (typeof l === "string") throw new Error(l);
			expect(l.entries).toEqual(plain.entries);
		}
	});

	it("reads stored and deflated entries", async () => {
		const src = new BufferSource(fixture("benign-compressed.npz"));
		const l = await listZip(src);
		if (typeof l === "string") throw new Error(l);
		const e = l.entries[0];
		if (!e) throw new Error("no entry");
		expect(e.method).toBe(8);
		const r = await readEntry(src, e, 1 << 20);
		expect("data" in r && r.data.subarray(0, 6).toString("latin1")).toBe("\x93NUMPY");
		// an output limit below the entry's size is an error, not an allocation
		const small = await readEntry(src, e, 16);
		expect("error" in small).toBe(true);
	});

	it("falls back to local headers when the EOCD is gone", async () => {
		const l = await listZip(new BufferSource(fixture("malicious-torch-zip-no-eocd.pt")));
		if (typeof l === "string") throw new Error(l);
		expect(l.fromLocalHeaders).toBe(true);
		expect(l.entries.some((e) => e.name === "archive/data.pkl")).toBe(true);
	});

	it("refuses absurd entry counts and reports non-zips", async () => {
		const eocd = Buffer.alloc(22);
		eocd.writeUInt32LE(0x06054b50, 0);
		eocd.writeUInt16LE(0xfffe, 10);
		// CPython lists no entries (it reads by the directory's size), but what lies past our limit is unknown
		const r = await listZip(new BufferSource(eocd), { maxEntries: 1000 });
		expect(typeof r).toBe("string");
		expect(typeof (await listZip(new BufferSource(Buffer.from("not a zip at all, just text"))))).toBe("string");
		expect(typeof (await listZip(new BufferSource(Buffer.alloc(0))))).toBe("string");
	});
});

describe("zip views (the loaders' own readings)", () => {
	const bases = loadCorpus<unknown>("zip").cases.filter((c) => c.ops.length === 0);
	const base = (tag: string) => {
		const c = bases.find((b) => b.from === tag);
		if (!c) throw new Error(`no base ${tag}`);
		return new BufferSource(c.bytes);
	};
	const read = async (src: BufferSource, l: ZipListing | string, name: string) => {
		if (typeof l === "string") throw new Error(l);
		const e = findEntry(l, name);
		if (!e) return undefined;
		const r = await readEntry(src, e, 1 << 20);
		return "error" in r ? r.error : r.data.toString("latin1");
	};

	it("a split-view archive: CPython shifts to the directory before the end record, miniz reads the one it names", async () => {
		const src = base("split-view");
		const py = await listZipView(src, "python");
		const mz = await listZipView(src, "miniz");
		if (typeof py === "string" || typeof mz === "string") throw new Error("refused");
		expect(py.entries.map((e) => e.name)).toEqual(["archive/version", "archive/data.pkl", "arr_0.npy"]);
		expect(mz.entries.map((e) => e.name)).toEqual(["archive/version", "archive/data.pkl"]);
		expect(await read(src, py, "archive/data.pkl")).toBe("B".repeat(40));
		expect(await read(src, mz, "archive/data.pkl")).toBe("A".repeat(40));
		// the lenient listing holds both, each read as its loader reads it
		const all = await listZip(src);
		if (typeof all === "string") throw new Error(all);
		const datas = all.entries.filter((e) => e.name === "archive/data.pkl");
		const contents = await Promise.all(
			datas.map(async (e) => {
				const r = await readEntry(src, e, 1 << 20);
				return "error" in r ? r.error : r.data.toString("latin1");
			}),
		);
		expect(contents.sort()).toEqual(["A".repeat(40), "B".repeat(40)]);
		expect(all.problems.join("; ")).toMatch(/python view lists 3 entries/);
	});

	it("bytes prepended to an archive: CPython reads it (concat shift), miniz refuses it", async () => {
		const src = base("raw-prepended");
		expect(typeof (await listZipView(src, "miniz"))).toBe("string");
		expect(await read(src, await listZipView(src, "python"), "archive/data/0")).toBe("\0".repeat(12));
	});

	it("lookups: CPython's last entry of the exact name, miniz's case-insensitive binary search", async () => {
		const dup = base("raw-duplicate");
		expect(await read(dup, await listZipView(dup, "python"), "archive/data.pkl")).toBe("second");
		const cs = base("raw-case-dup");
		const py = await listZipView(cs, "python");
		const mz = await listZipView(cs, "miniz");
		expect(await read(cs, py, "archive/DATA.PKL")).toBeUndefined();
		// torch 1.13 returns "upper" for every spelling (its heap sort puts that entry where the search lands)
		for (const n of ["archive/data.pkl", "archive/DATA.PKL", "archive/Data.Pkl"])
			expect(await read(cs, mz, n)).toBe("upper");
		if (typeof mz === "string") throw new Error(mz);
		expect(mz.archiveName).toBe("archive");
	});

	it("names: cp437 unless flagged UTF-8, cut at a NUL for CPython, raw bytes for miniz", async () => {
		const src = base("raw-cp437");
		const py = await listZipView(src, "python");
		if (typeof py === "string") throw new Error(py);
		expect(py.entries.slice(3).map((e) => e.name)).toEqual(["caf\u00e9.npy", "caf\u00e9.npy"]);
		const nul = await listZipView(base("raw-nul-name"), "python");
		if (typeof nul === "string") throw new Error(nul);
		expect(nul.entries[3]?.name).toBe("archive/data.pkl");
		expect(typeof (await listZipView(base("raw-bad-utf8"), "python"))).toBe("string");
	});

	it("CPython reads bzip2 and LZMA entries: refused here (an error, never an empty read)", async () => {
		const src = base("raw-bzip2");
		expect(await read(src, await listZipView(src, "python"), "b.npy")).toMatch(/not decoded here/);
	});
});
