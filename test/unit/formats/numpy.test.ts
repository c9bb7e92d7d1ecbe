import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { npzScanner, numpyScanner, parseNpyHeader } from "../../../lib/core/formats/numpy";
import { BufferSource } from "../../../lib/core/formats/source";
import { type Scanner, type ScanResult, verdictOf } from "../../../lib/core/formats/types";

const DIR = join(__dirname, "../../fixtures/pickle");
const fixture = (name: string) => readFileSync(join(DIR, name));

function scan(s: Scanner, bytes: Buffer, allowPickle: boolean): Promise<ScanResult> {
	expect(s.detect(bytes.subarray(0, 65536), "a.npy", bytes.length)).toBe(true);
	return s.scan({ source: new BufferSource(bytes), name: "a.npy", path: "/a.npy", policy: { allowPickle } });
}

function npy(header: string, data: Buffer = Buffer.alloc(0), version = 1): Buffer {
	const h = Buffer.from(header, "latin1");
	const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
	const len = Buffer.alloc(version === 1 ? 2 : 4);
	if (version === 1) len.writeUInt16LE(h.length);
	else len.writeUInt32LE(h.length);
	return Buffer.concat([pre, len, h, data]);
}

describe(".npy scanner", () => {
	it.each(["benign-float32.npy", "benign-int64.npy", "benign-structured.npy"])(
		"%s (no objects) is safe under both policies",
		async (name) => {
			for (const allow of [false, true]) {
				const r = await scan(numpyScanner, fixture(name), allow);
				expect(r).toEqual({ findings: [] });
			}
		},
	);

	it("object .npy is a pickle: safe with --allow-pickle, pickle-forbidden without", async () => {
		const bytes = fixture("benign-object.npy");
		expect(verdictOf(await scan(numpyScanner, bytes, true))).toBe("safe");
		const denied = await scan(numpyScanner, bytes, false);
		expect(denied.findings.map((f) => f.id)).toEqual(["pickle-forbidden"]);
	});

	it("object .npy with a payload is unsafe, naming the global", async () => {
		for (const allow of [false, true]) {
			const r = await scan(numpyScanner, fixture("malicious-object.npy"), allow);
			const f = r.findings.find((x) => x.id === "dangerous-global");
			expect(f?.severity).toBe("critical");
			expect(f?.message).toContain("posix.system");
			expect(f?.location).toMatch(/^opcode 0x[0-9a-f]+$/);
		}
	});

	it("finds 'O' anywhere in a structured descr", () => {
		const h = parseNpyHeader(npy("{'descr': [('a', '<f4'), ('b', '|O')], 'fortran_order': False, 'shape': (2,), }"));
		expect(typeof h !== "string" && h.object).toBe(true);
		const nested = parseNpyHeader(
			npy("{'descr': [('a', [('x', '<i4'), ('y', '|O')], (2,))], 'fortran_order': False, 'shape': (), }"),
		);
		expect(typeof nested !== "string" && nested.object).toBe(true);
	});

	it("parses as ast.literal_eval does, never evaluating: exact keys, integer shapes", () => {
		const bad = [
			"{'descr': __import__('os').system('id'), 'fortran_order': False, 'shape': (1,)}",
			"{'descr': '<f4', 'fortran_order': False}",
			"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
			"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
			"{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,)}",
			"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} trailing",
			"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
			"{'descr': f'<f4', 'fortran_order': False, 'shape': (1,)}",
		];
		for (const h of bad) expect(typeof parseNpyHeader(npy(h)), h).toBe("string");
		expect(parseNpyHeader(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", undefined, 2))).toEqual(
			expect.objectContaining({ shape: [3n, 4n], itemsize: 4n, object: false }),
		);
		// what numpy accepts: duplicate keys (the last value wins), spellings of 'O', Python 2's 1L (1.0 and 2.0 only)
		const object = (h: string, v = 1) => {
			const r = parseNpyHeader(npy(h, undefined, v));
			return typeof r === "string" ? r : r.object;
		};
		expect(object("{'descr': '<f4', 'descr': '|O', 'fortran_order': False, 'shape': (1,)}")).toBe(true);
		expect(object("{'descr': '|O', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}")).toBe(false);
		const spellings = [
			"'\\x4f'",
			"'|' 'O'",
			"u'O8'",
			"'i4,O'",
			"'(2,)O'",
			"['aO']",
			"('<i8', [('a', 'O')])",
			`'''object'''`,
		];
		for (const d of spellings) expect(object(`{'descr': ${d}, 'fortran_order': False, 'shape': (-1,)}`), d).toBe(true);
		expect(object("{'descr': [('pos', '<f4'), ('color', 'float64')], 'fortran_order': False, 'shape': (1L,)}")).toBe(
			false,
		);
		expect(object("{'descr': '|O', 'fortran_order': False, 'shape': (1L,)}", 3)).toMatch(/not an integer/);
		const v11 = npy("{'descr': '|O', 'fortran_order': False, 'shape': ()}");
		v11[7] = 1;
		expect(parseNpyHeader(v11)).toMatch(/version 1\.1/);
	});

	it("reports a size that does not match shape × itemsize as malformed", async () => {
		const r = await scan(
			numpyScanner,
			npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", Buffer.alloc(12)),
			true,
		);
		expect(verdictOf(r)).toBe("malformed");
		expect(r.malformed).toMatch(/12 bytes.*16/);
		const huge = await scan(
			numpyScanner,
			npy("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999), }"),
			true,
		);
		expect(verdictOf(huge)).toBe("malformed");
	});
});

describe(".npz scanner", () => {
	it.each(["benign.npz", "benign-compressed.npz"])("%s is safe", async (name) => {
		for (const allow of [false, true]) expect(await scan(npzScanner, fixture(name), allow)).toEqual({ findings: [] });
	});

	it("an npz member with a payload is unsafe, located at the member", async () => {
		for (const allow of [false, true]) {
			const r = await scan(npzScanner, fixture("malicious.npz"), allow);
			const f = r.findings.find((x) => x.id === "dangerous-global");
			expect(f?.severity).toBe("critical");
			expect(f?.message).toContain("posix.system");
			expect(f?.location).toMatch(/^evil\.npy @ opcode 0x/);
			expect(r.findings.filter((x) => x.id === "pickle-forbidden")).toHaveLength(allow ? 0 : 1);
		}
	});
});
