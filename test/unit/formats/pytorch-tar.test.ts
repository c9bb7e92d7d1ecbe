/**
 * PyTorch's pre-1.0 TAR checkpoints. The fixtures are written by
 * test/fixtures/pickle/make_tar_fixtures.py exactly as old torch.save wrote
 * them, and that script checks with torch 1.13 that the benign one loads back
 * and that every malicious one runs its payload. Edge cases of the tar format
 * are built here with a small ustar writer.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats/index";
import { pytorchTarScanner } from "../../../lib/core/formats/pytorch-tar";
import { chooseScanner, scanSource } from "../../../lib/core/formats/scan";
import { BufferSource } from "../../../lib/core/formats/source";
import { getMember, isTarHeader, listTar, nti, type TarListing } from "../../../lib/core/formats/tar";
import { type ScanResult, verdictOf } from "../../../lib/core/formats/types";
import { header, member, pad, setChecksum } from "../../helpers/tar";

const DIR = join(__dirname, "../../fixtures/pickle");
const fixture = (name: string) => readFileSync(join(DIR, name));
const BENIGN = "benign-state-dict-tar.pth.tar";

async function scan(bytes: Buffer, allowPickle: boolean, withHead = false): Promise<ScanResult & { read: number }> {
	const source = new BufferSource(bytes);
	const r = await pytorchTarScanner.scan({
		source,
		name: "m.pth.tar",
		path: "/m.pth.tar",
		policy: { allowPickle },
		...(withHead ? { head: bytes.subarray(0, 65536) } : {}),
	});
	return { ...r, read: source.bytesRead };
}

const ids = (r: ScanResult) => r.findings.map((f) => f.id);

const paxRecord = (k: string, v: string) => {
	const body = ` ${k}=${v}\n`;
	let n = body.length + 1;
	while (`${n}${body}`.length !== n) n++;
	return `${n}${body}`;
};
const pax = (records: Record<string, string>, type = "x") => {
	const data = Buffer.from(
		Object.entries(records)
			.map(([k, v]) => paxRecord(k, v))
			.join(""),
	);
	return Buffer.concat([header("././@PaxHeader", data.length, { type }), pad(data)]);
};
const gnuLong = (name: string) => {
	const data = Buffer.from(`${name}\0`);
	return Buffer.concat([header("././@LongLink", data.length, { type: "L" }), pad(data)]);
};
const tar = (...parts: Buffer[]) => Buffer.concat([...parts, Buffer.alloc(1024)]);

async function list(bytes: Buffer, max?: number): Promise<TarListing> {
	const l = await listTar(new BufferSource(bytes), max);
	if (typeof l === "string") throw new Error(`not a tar: ${l}`);
	return l;
}

/** The benign fixture's members, for rebuilding variants of it. */
async function benignMembers(): Promise<Record<string, Buffer>> {
	const b = fixture(BENIGN);
	const l = await list(b);
	return Object.fromEntries(l.members.map((m) => [m.name, b.subarray(m.dataOffset, m.dataOffset + m.size)]));
}

/** Offset of the data of member `name` in `bytes`. */
async function dataOffset(bytes: Buffer, name: string): Promise<number> {
	const m = getMember(await list(bytes), name);
	if (!m) throw new Error(`no ${name}`);
	return m.dataOffset;
}

// ---------------------------------------------------------------- fixtures

describe("pytorch-tar: checkpoints as torch < 0.4 wrote them (loaded by torch 1.13)", () => {
	const names = [
		BENIGN,
		"malicious-torch-tar-pickle.pth.tar",
		"malicious-torch-tar-storages.pth.tar",
		"malicious-torch-tar-tensors.pth.tar",
		"malicious-torch-tar-pax-path.pth.tar",
		"malicious-torch-tar-gnu-longname.pth.tar",
		"malicious-torch-tar-polyglot.pth.tar",
	];

	it.each(names)("the engine picks the pytorch-tar scanner for %s by content", async (name) => {
		const bytes = fixture(name);
		const options = { ...defaultScanOptions(), policy: { allowPickle: false } };
		const s = chooseScanner(bytes.subarray(0, 65536), "renamed.bin", bytes.length, options);
		expect(s?.format).toBe("pytorch-tar");
		const report = await scanSource(
			new BufferSource(bytes),
			{ displayPath: name, name, path: `/${name}`, modelDir: undefined },
			options,
		);
		expect(report.format).toBe("pytorch-tar");
		expect(report.verdict).toBe("unsafe");
	});

	it("benign: safe with --allow-pickle, pickle-forbidden (unsafe) by default", async () => {
		const bytes = fixture(BENIGN);
		const allowed = await scan(bytes, true);
		expect(allowed.findings).toEqual([]);
		expect(allowed.malformed).toBeUndefined();
		expect(verdictOf(allowed)).toBe("safe");
		const denied = await scan(bytes, false);
		expect(ids(denied)).toEqual(["pickle-forbidden"]);
		expect(verdictOf(denied)).toBe("unsafe");
	});

	it.each([
		["malicious-torch-tar-pickle.pth.tar", "pickle @ "],
		["malicious-torch-tar-storages.pth.tar", "storages @ "],
		["malicious-torch-tar-tensors.pth.tar", "tensors @ "],
		["malicious-torch-tar-pax-path.pth.tar", "pickle @ "],
		["malicious-torch-tar-gnu-longname.pth.tar", "pickle @ "],
		["malicious-torch-tar-polyglot.pth.tar", "byte 0 "],
	])("%s is unsafe and names posix.system in %s", async (name, where) => {
		for (const allowPickle of [true, false]) {
			const r = await scan(fixture(name), allowPickle);
			expect(verdictOf(r)).toBe("unsafe");
			const hit = r.findings.find((f) => f.id === "dangerous-global");
			expect(hit?.message).toContain("posix.system");
			expect(hit?.location?.startsWith(where)).toBe(true);
		}
	});

	it("the PAX / GNU long-name payload is the member tarfile resolves as 'pickle' (the last one)", async () => {
		for (const name of ["malicious-torch-tar-pax-path.pth.tar", "malicious-torch-tar-gnu-longname.pth.tar"]) {
			const bytes = fixture(name);
			const l = await list(bytes);
			expect(l.members.filter((m) => m.name === "pickle")).toHaveLength(2);
			const last = getMember(l, "pickle");
			expect(bytes.subarray(last?.dataOffset, (last?.dataOffset ?? 0) + (last?.size ?? 0)).includes("posix")).toBe(
				true,
			);
		}
	});

	it("the polyglot: tarfile fails (data past the end), torch reads byte 0 as a pickle", async () => {
		const r = await scan(fixture("malicious-torch-tar-polyglot.pth.tar"), true);
		expect(ids(r)).toContain("pytorch-tar-polyglot");
		expect(r.malformed).toMatch(/legacy pickle stream from byte 0/);
	});

	it("a record pickle that is a payload stops the walk: unverifiable, never a guess", async () => {
		const r = await scan(fixture("malicious-torch-tar-storages.pth.tar"), true);
		expect(ids(r)).toEqual(["weights-only-refused", "dangerous-global", "pytorch-tar-unverifiable"]);
	});

	it("gives the same result with the engine's head, reading no more", async () => {
		for (const name of names) {
			for (const allowPickle of [true, false]) {
				const plain = await scan(fixture(name), allowPickle);
				const headed = await scan(fixture(name), allowPickle, true);
				expect(headed.findings).toEqual(plain.findings);
				expect(headed.malformed).toEqual(plain.malformed);
				expect(headed.read).toBeLessThanOrEqual(plain.read);
			}
		}
	});

	it("reads headers and pickles, not storage bytes", async () => {
		const m = await benignMembers();
		const storages = m.storages as Buffer;
		// One storage record from the fixture, 1 Mi float32 elements, an empty storage_views list.
		const tail = Buffer.from("FloatStorage\nq\x01\x87q\x02.", "latin1");
		const recEnd = storages.indexOf(tail) + tail.length;
		const count = Buffer.alloc(8);
		count.writeBigInt64LE(1n << 20n);
		const big = Buffer.concat([
			Buffer.from([0x80, 0x02, 0x4b, 0x01, 0x2e]),
			storages.subarray(5, recEnd),
			count,
			Buffer.alloc(4 << 20),
			Buffer.from([0x80, 0x02, 0x5d, 0x2e]),
		]);
		const bytes = tar(
			member("sys_info", m.sys_info as Buffer),
			member("pickle", m.pickle as Buffer),
			member("tensors", m.tensors as Buffer),
			member("storages", big),
		);
		const r = await scan(bytes, true);
		expect(verdictOf(r)).toBe("safe");
		expect(r.read).toBeLessThan(64 * 1024);
	});
});

// ---------------------------------------------------------------- truncated and garbled

describe("pytorch-tar: truncated or garbled checkpoints are never safe", () => {
	it("every cut before the end of the last member's data is not safe; after it, tarfile still reads the archive", async () => {
		const bytes = fixture(BENIGN);
		const l = await list(bytes);
		const last = l.members[l.members.length - 1];
		const end = (last?.dataOffset ?? 0) + Math.ceil((last?.size ?? 0) / 512) * 512; // 4096: torch 1.13 loads a cut there
		for (let cut = 0; cut < bytes.length; cut += cut < end + 1024 ? 37 : 512) {
			const r = await scan(bytes.subarray(0, cut), true);
			if (cut < end) expect(verdictOf(r), `cut at ${cut}`).not.toBe("safe");
			else expect(verdictOf(r), `cut at ${cut}`).toBe("safe");
		}
	});

	it("a cut inside member data is tarfile's ReadError: torch falls back to byte 0, reported malformed", async () => {
		const r = await scan(fixture(BENIGN).subarray(0, 4000), true);
		expect(verdictOf(r)).toBe("malformed");
		expect(r.malformed).toMatch(/unexpected end of data/);
		expect(ids(r)).toEqual(["pytorch-tar-malformed"]);
	});

	async function patched(f: (b: Buffer, off: (name: string) => Promise<number>) => Promise<void>): Promise<Buffer> {
		const b = Buffer.from(fixture(BENIGN));
		await f(b, (name) => dataOffset(b, name));
		return b;
	}

	it("num_storages that is not a pickle: malformed", async () => {
		const b = await patched(async (b, off) => {
			b[(await off("storages")) + 2] = 0xff; // BININT1 → an unknown opcode
		});
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("malformed");
		expect(ids(r)).toContain("pytorch-tar-malformed");
	});

	it("a storage longer than its member: malformed", async () => {
		const b = await patched(async (b, off) => {
			const s = await off("storages");
			const at = b.indexOf(Buffer.from("q\x02.", "latin1"), s) + 3; // after the first record
			b.writeBigInt64LE(1n << 40n, at);
		});
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("malformed");
		expect(r.findings.find((f) => f.id === "pytorch-tar-malformed")?.message).toMatch(/storage 0 holds/);
	});

	it("a tensor's ndim past its member: malformed", async () => {
		const b = await patched(async (b, off) => {
			const t = await off("tensors");
			const tail = Buffer.from("FloatTensor\nq\x00\x87q\x01.", "latin1");
			const at = b.indexOf(tail, t) + tail.length;
			b.writeInt32LE(0x7fffffff, at);
		});
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("malformed");
		expect(r.findings.find((f) => f.id === "pytorch-tar-malformed")?.message).toMatch(/tensor 0's metadata/);
	});

	it("a storage type of unknown element size: unsafe (the walk cannot go on, torch might)", async () => {
		const b = await patched(async (b, off) => {
			const s = await off("storages");
			const at = b.indexOf("FloatStorage", s);
			b.write("FlaotStorage", at, "latin1");
		});
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings.find((f) => f.id === "pytorch-tar-unverifiable")?.message).toContain("torch.FlaotStorage");
	});

	it("a 'pickle' member that is a symbolic link: unsafe", async () => {
		const b = await patched(async (b) => {
			const l = await list(b);
			const m = getMember(l, "pickle");
			const h = m?.headerOffset ?? 0;
			b.write("2", h + 156, "latin1");
			b.write("/tmp/evil.pkl", h + 157, "latin1");
			setChecksum(b, h);
		});
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings.find((f) => f.id === "pytorch-tar-unverifiable")?.message).toMatch(/symbolic link/);
	});

	it("a bad checksum on 'storages' ends the archive there (as tarfile does): missing member, malformed", async () => {
		const b = await patched(async (b) => {
			const m = getMember(await list(b), "storages");
			const at = (m?.headerOffset ?? 0) + 10;
			b.writeUInt8(b.readUInt8(at) ^ 1, at);
		});
		expect(getMember(await list(b), "storages")).toBeUndefined();
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("malformed");
		expect(r.malformed).toMatch(/no member 'storages'/);
	});

	it("a GNU sparse member cannot be followed: unsafe", async () => {
		const m = await benignMembers();
		const b = tar(
			member("sys_info", m.sys_info as Buffer),
			member("pickle", m.pickle as Buffer),
			member("tensors", m.tensors as Buffer, { type: "S" }),
			member("storages", m.storages as Buffer),
		);
		const r = await scan(b, true);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings.find((f) => f.id === "pytorch-tar-unverifiable")?.message).toMatch(/sparse/);
	});
});

// ---------------------------------------------------------------- the tar reader

describe("tar reader: as Python's tarfile reads it", () => {
	it("number fields: octal text as int(s.strip() or '0', 8), GNU base-256, else an invalid header", () => {
		const f = (s: string | number[]) => (typeof s === "string" ? Buffer.from(s, "latin1") : Buffer.from(s));
		expect(nti(f("0000644\0"))).toBe(0o644);
		expect(nti(f(" 12 \0xx"))).toBe(0o12);
		expect(nti(f("0o17\0"))).toBe(0o17);
		expect(nti(f("1_0\0"))).toBe(0o10);
		expect(nti(f("\0garbage"))).toBe(0);
		expect(nti(f([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]))).toBe(65536);
		expect(nti(f([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]))).toBe(-2);
		for (const bad of ["0x10\0", "8\0", "_7\0", "7_\0", "0o\0", "1 2\0"]) expect(() => nti(f(bad)), bad).toThrow();
	});

	it("accepts the signed checksum too, and nothing else", async () => {
		const name = Buffer.from("caf\xe9.txt", "latin1");
		expect(isTarHeader(header(name, 0, { signedChecksum: true }))).toBe(true);
		const h = header("a", 0);
		h[0] = 0x62;
		expect(isTarHeader(h)).toBe(false);
		expect(isTarHeader(Buffer.alloc(512))).toBe(false);
		expect(isTarHeader(header("a", 0).subarray(0, 511))).toBe(false);
	});

	it("joins the ustar prefix, turns 'name/' AREGTYPE into a directory, strips directory slashes", async () => {
		const l = await list(
			tar(
				member("b", Buffer.from("x"), { prefix: "a" }),
				header("d/", 0, { type: "\0" }),
				header("e//", 0, { type: "5" }),
			),
		);
		expect(l.members.map((m) => [m.name, m.type])).toEqual([
			["a/b", "0"],
			["d", "5"],
			["e", "5"],
		]);
	});

	it("PAX x patches the next member (path, size moves the next header); PAX g every later one", async () => {
		const data = Buffer.alloc(600, 0x41);
		const l = await list(
			tar(
				pax({ path: "pickle///", size: "600" }),
				Buffer.concat([header("decoy", 1), pad(data)]),
				member("x", Buffer.from("y")),
				pax({ path: "storages" }, "g"),
				member("one", Buffer.from("1")),
				member("two", Buffer.from("2")),
			),
		);
		expect(l.members.map((m) => [m.name, m.size])).toEqual([
			["pickle", 600],
			["x", 1],
			["storages", 1],
			["storages", 1],
		]);
	});

	it("GNU long names (type L) name the next member", async () => {
		const l = await list(tar(gnuLong("tensors"), member("short", Buffer.from("z"))));
		expect(l.members.map((m) => m.name)).toEqual(["tensors"]);
		expect(l.members[0]?.headerOffset).toBe(0);
	});

	it("ends silently at a zero block or a bad header; members after it do not exist for torch", async () => {
		const after = member("pickle", Buffer.from("evil"));
		const zero = await list(Buffer.concat([member("a", Buffer.from("1")), Buffer.alloc(512), after]));
		expect(zero.members.map((m) => m.name)).toEqual(["a"]);
		const junk = await list(Buffer.concat([member("a", Buffer.from("1")), Buffer.alloc(512, 0x41), after]));
		expect(junk.members.map((m) => m.name)).toEqual(["a"]);
		expect(junk.readError).toBeUndefined();
	});

	it("ReadError where tarfile raises it: a bad header after a PAX record, data past the end", async () => {
		const afterPax = await list(
			Buffer.concat([member("a", Buffer.from("1")), pax({ path: "b" }), Buffer.alloc(512, 1)]),
		);
		expect(afterPax.readError).toMatch(/extension record/);
		const cut = await list(member("a", Buffer.alloc(2000)).subarray(0, 1500));
		expect(cut.readError).toBe("unexpected end of data");
		// an all-zero first block is an empty archive (tarfile.open succeeds, no members), not "not a tar"
		expect(await listTar(new BufferSource(Buffer.alloc(1024)))).toEqual({ members: [] });
		expect(await listTar(new BufferSource(Buffer.alloc(0)))).toBe("empty file");
	});

	it("bounds the member count and refuses what it does not follow", async () => {
		const many = tar(...Array.from({ length: 5 }, (_, i) => member(`m${i}`, Buffer.from("x"))));
		expect((await list(many, 3)).unsupported).toMatch(/more than 3 members/);
		const neg = tar(header("a", 0, { sizeField: Buffer.from([0xff, ...Array(10).fill(0xff), 0xf0]) }));
		expect((await list(neg)).unsupported).toMatch(/negative/);
		const sparse = tar(pax({ "GNU.sparse.map": "0,1" }), member("a", Buffer.from("1")));
		expect((await list(sparse)).unsupported).toMatch(/sparse/);
	});
});

// ---------------------------------------------------------------- tars that are not torch's

describe("pytorch-tar: other tars holding pickles", () => {
	it("a pickle member of a plain tar is analysed under the policy", async () => {
		const b = tar(
			member("README.md", Buffer.from("# model\n")),
			member("evil.pkl", fixture("malicious-os-system.pkl")),
		);
		for (const allowPickle of [true, false]) {
			const r = await scan(b, allowPickle);
			expect(verdictOf(r)).toBe("unsafe");
			expect(r.findings.find((f) => f.id === "dangerous-global")?.location).toMatch(/^evil\.pkl @ /);
			expect(ids(r).includes("pickle-forbidden")).toBe(!allowPickle);
		}
	});

	it("a pickle under a name that does not say so is found by its first bytes", async () => {
		const r = await scan(tar(member("weights", fixture("malicious-os-system.pkl"))), true);
		expect(verdictOf(r)).toBe("unsafe");
	});

	it("a torch zip checkpoint inside a tar goes to the zip scanner", async () => {
		const benign = tar(member("model.pt", fixture("benign-state-dict.pt")));
		expect(verdictOf(await scan(benign, true))).toBe("safe");
		expect(ids(await scan(benign, false))).toEqual(["pickle-forbidden"]);
		const evil = await scan(tar(member("model.pt", fixture("malicious-torch-zip-other-name.pt"))), true);
		expect(verdictOf(evil)).toBe("unsafe");
		expect(evil.findings.find((f) => f.id === "dangerous-global")?.location).toMatch(/^model\.pt\//);
	});

	it("a tar with no pickle in it is safe, with a note that its other members were not scanned", async () => {
		// raw weights named like a pickle, whose first byte no unpickler runs (0x00), are not one
		const raw = Buffer.alloc(4096, 0);
		const r = await scan(
			tar(member("config.json", Buffer.from("{}")), member("model.bin", raw), header("dir", 0, { type: "5" })),
			false,
		);
		expect(verdictOf(r)).toBe("safe");
		expect(r.findings).toMatchObject([{ id: "tar-members-not-scanned", severity: "low" }]);
	});

	it("a first member whose name starts with a pickle opcode is not a polyglot unless it imports something", async () => {
		const r = await scan(tar(member("cfg/model.json", Buffer.from("{}"))), true);
		expect(ids(r)).not.toContain("pytorch-tar-polyglot");
		const evil = tar(member(`cposix\nsystem\n(S'true'\ntR.`, Buffer.from("x")), member("README", Buffer.from("y")));
		expect(ids(await scan(evil, true))).toContain("pytorch-tar-polyglot");
	});
});
