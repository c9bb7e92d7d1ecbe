import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { pickleScanner } from "../../../lib/core/formats/pickle-scanner";
import { pytorchLegacyScanner, pytorchZipScanner } from "../../../lib/core/formats/pytorch";
import { BufferSource } from "../../../lib/core/formats/source";
import { type Scanner, type ScanResult, verdictOf } from "../../../lib/core/formats/types";
import { entryDataOffset, listZip } from "../../../lib/core/formats/zip";

const DIR = join(__dirname, "../../fixtures/pickle");
const fixture = (name: string) => readFileSync(join(DIR, name));
const SCANNERS = [pytorchLegacyScanner, pytorchZipScanner, pickleScanner];

function detect(bytes: Buffer, name: string): Scanner | undefined {
	return SCANNERS.find((s) => s.detect(bytes.subarray(0, 65536), name, bytes.length));
}

async function scanWith(s: Scanner, bytes: Buffer, allowPickle: boolean): Promise<ScanResult & { read: number }> {
	const source = new BufferSource(bytes);
	const r = await s.scan({ source, name: "m.pt", path: "/m.pt", policy: { allowPickle } });
	return { ...r, read: source.bytesRead };
}

describe("PyTorch scanners on torch.save output", () => {
	it.each([
		["benign-state-dict.pt", "pytorch-zip"],
		["weights-only/optimizer-adam.pt", "pytorch-zip"],
		["weights-only/training-ints-only.pt", "pytorch-zip"],
		["benign-state-dict-legacy.pt", "pytorch-legacy"],
		["weights-only/optimizer-adam-legacy.pt", "pytorch-legacy"],
	])("%s is %s, safe with --allow-pickle and pickle-forbidden without", async (name, format) => {
		const bytes = fixture(name);
		const s = detect(bytes, name);
		expect(s?.format).toBe(format);
		if (!s) return;
		const allowed = await scanWith(s, bytes, true);
		expect(allowed.findings).toEqual([]);
		expect(allowed.malformed).toBeUndefined();
		expect(verdictOf(allowed)).toBe("safe");
		const denied = await scanWith(s, bytes, false);
		expect(denied.findings.map((f) => f.id)).toEqual(["pickle-forbidden"]);
		expect(verdictOf(denied)).toBe("unsafe");
	});

	it.each([
		["malicious-torch-zip-other-name.pt", "pytorch-zip", "archive/extra/config.bin @ opcode 0x2"],
		["malicious-torch-zip-deflated.pt", "pytorch-zip", "archive/data.pkl @ opcode 0x2"],
		["malicious-torch-zip-bad-crc-name.pt", "pytorch-zip", "archive/data.pkl @ opcode 0x2"],
		["malicious-torch-zip-no-eocd.pt", "pytorch-zip", "archive/data.pkl @ opcode 0x2"],
		["malicious-torch-legacy.pt", "pytorch-legacy", "opcode 0x"],
	])("%s (%s) → dangerous-global posix.system at %s", async (name, format, loc) => {
		const bytes = fixture(name);
		const s = detect(bytes, name);
		expect(s?.format).toBe(format);
		if (!s) return;
		for (const allow of [false, true]) {
			const r = await scanWith(s, bytes, allow);
			expect(verdictOf(r)).toBe("unsafe");
			const f = r.findings.find((x) => x.id === "dangerous-global");
			expect(f?.severity).toBe("critical");
			expect(f?.message).toContain("posix.system");
			expect(f?.location).toContain(loc);
		}
	});

	it.each(["benign-training-checkpoint.pt", "benign-training-checkpoint-legacy.pt"])(
		"%s holds a frozenset, which no weights_only loader reads: refused with --allow-pickle",
		async (name) => {
			const bytes = fixture(name);
			const s = detect(bytes, name);
			if (!s) throw new Error("not claimed");
			const r = await scanWith(s, bytes, true);
			expect(verdictOf(r)).toBe("unsafe");
			const f = r.findings.find((x) => x.id === "weights-only-refused");
			expect(f?.message).toContain("builtins.frozenset");
		},
	);

	it("tolerates a bad CRC and a mismatched local name like PyTorch's loader (not malformed)", async () => {
		const r = await scanWith(pytorchZipScanner, fixture("malicious-torch-zip-bad-crc-name.pt"), true);
		expect(r.malformed).toBeUndefined();
	});

	it("reports a broken central directory as malformed but still scans local headers", async () => {
		const r = await scanWith(pytorchZipScanner, fixture("malicious-torch-zip-no-eocd.pt"), true);
		expect(r.malformed).toMatch(/central directory/);
	});

	it("reads only the pickles of a legacy file, not its storage bytes", async () => {
		const legacy = fixture("weights-only/optimizer-adam-legacy.pt");
		// Same file with 64 MiB more storage bytes: the scan must read no more than before.
		const big = Buffer.concat([legacy, Buffer.alloc(64 * 1024 * 1024, 0x80)]);
		const small = await scanWith(pytorchLegacyScanner, legacy, true);
		const large = await scanWith(pytorchLegacyScanner, big, true);
		expect(verdictOf(large)).toBe("safe");
		// One 64 KiB first chunk covers the five pickles: one pass, one read.
		expect(large.read).toBeLessThanOrEqual(Math.max(small.read, 64 * 1024));
		expect(large.read).toBeLessThanOrEqual(64 * 1024);
		// With the engine's 64 KiB head passed in, nothing is read again.
		const source = new BufferSource(big);
		const head = big.subarray(0, 65536);
		const withHead = await pytorchLegacyScanner.scan({
			source,
			name: "m.pt",
			path: "/m.pt",
			policy: { allowPickle: true },
			head,
		});
		expect(verdictOf(withHead)).toBe("safe");
		expect(withHead).toEqual(
			await pytorchLegacyScanner.scan({
				source: new BufferSource(big),
				name: "m.pt",
				path: "/m.pt",
				policy: { allowPickle: true },
			}),
		);
		expect(source.bytesRead).toBe(0);
	});

	it("analyses a second pickle that starts exactly where a read ended", async () => {
		const payload = fixture("malicious-os-system.pkl");
		for (const first of [16 * 1024, 64 * 1024, 256 * 1024]) {
			// PROTO 2, BINUNICODE (4-byte length) of filler, STOP: `first` bytes in all (a pickle weights_only loads).
			const n = first - 8;
			const head = Buffer.from([0x80, 0x02, 0x58, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, 0]);
			const bytes = Buffer.concat([head, Buffer.alloc(n, 0x61), Buffer.from("."), payload]);
			for (const allow of [true, false]) {
				const r = await scanWith(pickleScanner, bytes, allow);
				expect(verdictOf(r), String(first)).toBe("unsafe");
				expect(r.findings.map((f) => f.id)).toContain("dangerous-global");
			}
		}
	});

	it("gives the same results through a source without synchronous reads", async () => {
		for (const name of readdirSync(DIR).filter((n) => /\.(pt|pkl|npz)$/.test(n))) {
			const bytes = fixture(name);
			const s = detect(bytes, name) ?? pytorchZipScanner;
			for (const head of [undefined, bytes.subarray(0, 65536)]) {
				const inner = new BufferSource(bytes);
				const asyncOnly = {
					size: inner.size,
					get bytesRead() {
						return inner.bytesRead;
					},
					read: (o: number, n: number) => inner.read(o, n),
				};
				const input = { name: "m.pt", path: "/m.pt", policy: { allowPickle: true }, ...(head ? { head } : {}) };
				const a = await s.scan({ ...input, source: asyncOnly });
				const plain = new BufferSource(bytes);
				const b = await s.scan({ ...input, source: plain });
				expect(a).toEqual(b);
				expect(inner.bytesRead).toBe(plain.bytesRead);
			}
		}
	});

	it("gives the same results with and without the engine's head, reading the head's bytes once", async () => {
		for (const name of readdirSync(DIR).filter((n) => /\.(pt|pkl)$/.test(n))) {
			const bytes = fixture(name);
			const s = detect(bytes, name) ?? pytorchZipScanner;
			for (const allowPickle of [true, false]) {
				const plain = await scanWith(s, bytes, allowPickle);
				const source = new BufferSource(bytes);
				const head = bytes.subarray(0, 65536);
				const r = await s.scan({ source, name: "m.pt", path: "/m.pt", policy: { allowPickle }, head });
				expect(r).toEqual({
					findings: plain.findings,
					...(plain.malformed !== undefined ? { malformed: plain.malformed } : {}),
				});
				expect(source.bytesRead).toBeLessThanOrEqual(plain.read);
			}
		}
	});

	it("reads only the records torch unpickles of a torch zip (not its storages)", async () => {
		const zip = fixture("weights-only/optimizer-adam.pt");
		const r = await scanWith(pytorchZipScanner, zip, true);
		expect(verdictOf(r)).toBe("safe");
		expect(r.read).toBeLessThan(zip.length * 2);
	});

	it("does not mistake tensor bytes that start like a pickle for one", async () => {
		const bytes = Buffer.from(fixture("benign-state-dict.pt"));
		const src = new BufferSource(bytes);
		const l = await listZip(src);
		if (typeof l === "string") throw new Error(l);
		const tensor = l.entries.find((e) => /\/data\/0$/.test(e.name));
		if (!tensor) throw new Error("no tensor entry");
		const at = await entryDataOffset(src, tensor);
		if (typeof at === "string") throw new Error(at);
		bytes[at] = 0x80;
		bytes[at + 1] = 0x02;
		bytes[at + 2] = 0xff; // not an opcode: the sniffed "pickle" fails at once
		const r = await scanWith(pytorchZipScanner, bytes, true);
		expect(r).toEqual(expect.objectContaining({ findings: [] }));
		expect(verdictOf(r)).toBe("safe");
	});

	it("flags a legacy file that stops before its five pickles", async () => {
		const legacy = fixture("benign-state-dict-legacy.pt");
		const r = await scanWith(pytorchLegacyScanner, legacy.subarray(0, 60), true);
		expect(verdictOf(r)).not.toBe("safe");
	});

	it("bounds a deflate bomb in a pickle entry", async () => {
		// A zip with one deflated .pkl entry that inflates to 300 MiB of zeros.
		const comp = deflateRawSync(Buffer.alloc(300 * 1024 * 1024));
		const name = Buffer.from("archive/data.pkl");
		const local = Buffer.alloc(30);
		local.writeUInt32LE(0x04034b50, 0);
		local.writeUInt16LE(8, 8);
		local.writeUInt32LE(comp.length, 18);
		local.writeUInt32LE(300 * 1024 * 1024, 22);
		local.writeUInt16LE(name.length, 26);
		const central = Buffer.alloc(46);
		central.writeUInt32LE(0x02014b50, 0);
		central.writeUInt16LE(8, 10);
		central.writeUInt32LE(comp.length, 20);
		central.writeUInt32LE(300 * 1024 * 1024, 24);
		central.writeUInt16LE(name.length, 28);
		const cdOff = 30 + name.length + comp.length;
		const eocd = Buffer.alloc(22);
		eocd.writeUInt32LE(0x06054b50, 0);
		eocd.writeUInt16LE(1, 8);
		eocd.writeUInt16LE(1, 10);
		eocd.writeUInt32LE(46 + name.length, 12);
		eocd.writeUInt32LE(cdOff, 16);
		const zip = Buffer.concat([local, name, comp, central, name, eocd]);
		const r = await scanWith(pytorchZipScanner, zip, true);
		expect(verdictOf(r)).not.toBe("safe");
		expect(r.findings.map((f) => f.id)).toContain("unreadable-pickle-entry");
	});
});
