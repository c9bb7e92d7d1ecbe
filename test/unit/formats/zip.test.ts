import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { isZip, listZip, readEntry } from "../../../lib/core/formats/zip";

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
		const r = await listZip(new BufferSource(eocd), { maxEntries: 1000 });
		expect(typeof r).toBe("string");
		expect(typeof (await listZip(new BufferSource(Buffer.from("not a zip at all, just text"))))).toBe("string");
		expect(typeof (await listZip(new BufferSource(Buffer.alloc(0))))).toBe("string");
	});
});
