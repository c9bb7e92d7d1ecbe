/** The strict value decoder torch's tar records are read with: the subset it decodes, and everything else refused. */
import { describe, expect, it } from "vitest";
import { decodePickleValue } from "../../../lib/core/formats/pickle-values";

const bytes = (...parts: (string | number[])[]) =>
	Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))));

describe("decodePickleValue", () => {
	it("refuses REDUCE, dicts and persistent ids, unless asked for symbolic objects (export binding)", () => {
		// OrderedDict() with one item whose value is a persistent id, then BUILD: what torch.save writes, in small
		const buf = bytes(
			[0x80, 0x02],
			"ccollections\nOrderedDict\n",
			[0x29, 0x52],
			"X",
			[1, 0, 0, 0],
			"w",
			[0x4b, 7, 0x85, 0x51, 0x73, 0x7d, 0x62],
			".",
		);
		expect(decodePickleValue(buf)).toBeUndefined();
		expect(decodePickleValue(buf, { objects: true })?.value).toEqual({
			t: "obj",
			func: { t: "global", module: "collections", name: "OrderedDict" },
			args: { t: "seq", kind: "tuple", items: [] },
			entries: [
				[
					{ t: "str", v: "w" },
					{ t: "persid", id: { t: "seq", kind: "tuple", items: [{ t: "int", v: 7n }] } },
				],
			],
			// BUILD's state stays on the object (binding refuses a tensor re-pointed by one)
			state: [{ t: "dict", entries: [] }],
		});
		// SETITEM onto anything but a dict or an object is not a value
		expect(
			decodePickleValue(bytes([0x80, 0x02, 0x5d, 0x4b, 1, 0x4b, 2, 0x73], "."), { objects: true }),
		).toBeUndefined();
	});

	it("decodes a count pickle, ending just after STOP", () => {
		expect(decodePickleValue(bytes([0x80, 0x02], "K\x05."))).toEqual({ value: { t: "int", v: 5n }, end: 5 });
		expect(decodePickleValue(bytes("I01\n."))).toEqual({ value: { t: "int", v: 1n }, end: 5 });
		expect(decodePickleValue(bytes([0x80, 0x02, 0x8a, 0x02, 0x00, 0x80], "."))?.value).toEqual({
			t: "int",
			v: -32768n,
		});
	});

	it("decodes a storage record (key, location, storage_type) with its memo", () => {
		const buf = bytes(
			[0x80, 0x02],
			"X",
			[1, 0, 0, 0],
			"a",
			"q\x00",
			"X",
			[3, 0, 0, 0],
			"cpu",
			"q\x01",
			"ctorch\nFloatStorage\n",
			"q\x02",
			[0x87],
			"q\x03.",
		);
		expect(decodePickleValue(buf)).toEqual({
			value: {
				t: "seq",
				kind: "tuple",
				items: [
					{ t: "str", v: "a" },
					{ t: "str", v: "cpu" },
					{ t: "global", module: "torch", name: "FloatStorage" },
				],
			},
			end: buf.length,
		});
		expect(decodePickleValue(bytes("(K\x01q\x00h\x00t."))?.value).toEqual({
			t: "seq",
			kind: "tuple",
			items: [
				{ t: "int", v: 1n },
				{ t: "int", v: 1n },
			],
		});
	});

	it("ends past a FRAME that outlasts STOP, as the C unpickler reads whole frames", () => {
		const buf = bytes([0x80, 0x04, 0x95, 4, 0, 0, 0, 0, 0, 0, 0], "K\x07.", [0x00]);
		expect(decodePickleValue(buf)).toEqual({ value: { t: "int", v: 7n }, end: 15 });
	});

	it("refuses anything outside the subset, a stack left over, and truncation", () => {
		expect(decodePickleValue(bytes("cos\nsystem\n(X", [2, 0, 0, 0], "idtR."))).toBeUndefined();
		expect(decodePickleValue(bytes("G", [0, 0, 0, 0, 0, 0, 0, 0], "."))).toBeUndefined();
		expect(decodePickleValue(bytes("K\x01K\x02."))).toBeUndefined();
		expect(decodePickleValue(bytes("X", [9, 0, 0, 0], "ab"))).toBeUndefined();
		expect(decodePickleValue(bytes("h\x00."))).toBeUndefined();
	});
});
