/**
 * Dataset lineage: the Merkle root against a plain recursive RFC 6962 tree hash written here, canonical JSON against
 * RFC 8785's examples, one changed record changing the root, and diffLineage's added / removed / moved records.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalBytes, diffLineage, type Lineage, LineageBuilder } from "../../../lib/core/dataset/lineage";

const sha256 = (...parts: Uint8Array[]): Buffer => {
	const h = createHash("sha256");
	for (const p of parts) h.update(p);
	return h.digest();
};

/** RFC 6962 §2.1, as written there: MTH({}) = SHA-256(), MTH({d}) = SHA-256(0x00 || d), else split at the largest
 * power of two smaller than n: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
function mth(leaves: readonly Uint8Array[]): Buffer {
	const n = leaves.length;
	if (n === 0) return sha256();
	if (n === 1) return sha256(Buffer.from([0]), leaves[0] as Uint8Array);
	let k = 1;
	while (k * 2 < n) k *= 2;
	return sha256(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

function lineageOf(values: readonly unknown[]): Lineage {
	const b = new LineageBuilder();
	for (const v of values) b.addRecord(canonicalBytes(v));
	return b.finish();
}

const canonical = (v: unknown) => canonicalBytes(v).toString("utf8");

describe("Merkle root", () => {
	it.each([0, 1, 2, 3, 5, 8, 13, 1000, 3000])("%i leaves: the RFC 6962 tree head", (n) => {
		const records = Array.from({ length: n }, (_, i) => ({ prompt: `question ${i}`, completion: `answer ${i * 7}` }));
		const leaves = records.map((r) => canonicalBytes(r));
		const b = new LineageBuilder();
		const leafHashes = leaves.map((l) => b.addRecord(l));
		const lineage = b.finish();
		expect(lineage.merkle_root).toBe(mth(leaves).toString("hex"));
		expect(lineage.records).toBe(n);
		expect(lineage.version).toBe(1);
		// each leaf is SHA-256(0x00 || canonical JSON); the manifest keeps its first 8 bytes in record order
		expect(leafHashes.map((h) => h.toString("hex"))).toEqual(
			leaves.map((l) => sha256(Buffer.from([0]), l).toString("hex")),
		);
		expect(Buffer.from(lineage.leaf_prefixes, "base64")).toEqual(
			Buffer.concat(leafHashes.map((h) => h.subarray(0, 8))),
		);
	});

	it("matches the RFC 6962 test vectors of Certificate Transparency's reference implementation", () => {
		const leaves = [
			"",
			"00",
			"10",
			"2021",
			"3031",
			"40414243",
			"5051525354555657",
			"606162636465666768696a6b6c6d6e6f",
		].map((h) => Buffer.from(h, "hex"));
		const roots = [
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
			"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
			"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
			"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
			"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
			"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
		];
		const b = new LineageBuilder();
		leaves.forEach((l, i) => {
			b.addRecord(l);
			expect(b.finish().merkle_root, `${i + 1} leaves`).toBe(roots[i]);
		});
		expect(new LineageBuilder().finish().merkle_root).toBe(
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		);
	});

	it("one changed record, a swap or a dropped record changes the root", () => {
		const records = Array.from({ length: 1000 }, (_, i) => ({
			instruction: `task ${i}`,
			input: "",
			output: `done ${i}`,
		}));
		const root = lineageOf(records).merkle_root;
		const changed = records.map((r, i) => (i === 617 ? { ...r, output: `done ${i}.` } : r));
		expect(lineageOf(changed).merkle_root).not.toBe(root);
		const swapped = [...records];
		swapped.splice(3, 2, records[4] as (typeof records)[number], records[3] as (typeof records)[number]);
		expect(lineageOf(swapped).merkle_root).not.toBe(root);
		expect(lineageOf(records.slice(0, 999)).merkle_root).not.toBe(root);
		expect(lineageOf(records).merkle_root).toBe(root);
	});

	it("names the records, not their spelling: key order, spacing and escapes do not change the root", () => {
		const a = ['{"prompt": "caf\\u00e9", "completion": "1.0"}', '{"b": [1, 2], "a": {"y": 1e21, "x": -0}}'];
		const b = ['{"completion":"1.0","prompt":"café"}', '{"a":{"x":0,"y":1000000000000000000000},"b":[1,2]}'];
		expect(lineageOf(a.map((t) => JSON.parse(t))).merkle_root).toBe(lineageOf(b.map((t) => JSON.parse(t))).merkle_root);
		// a value that differs is another record
		const c = ['{"completion":"1","prompt":"café"}', b[1] as string];
		expect(lineageOf(c.map((t) => JSON.parse(t))).merkle_root).not.toBe(
			lineageOf(b.map((t) => JSON.parse(t))).merkle_root,
		);
	});
});

describe("canonical JSON (RFC 8785)", () => {
	it("§3.2.2's example: whitespace, number forms and string escapes", () => {
		const input = JSON.parse(
			'{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
		);
		expect(canonical(input)).toBe(
			'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
		);
	});

	it("§3.2.3's example: properties sorted by UTF-16 code units, not by code points or UTF-8", () => {
		const input = {
			"\u20ac": "Euro Sign",
			"\r": "Carriage Return",
			"\ufb33": "Hebrew Letter Dalet With Dagesh",
			"1": "One",
			"\ud83d\ude00": "Emoji: Grinning Face",
			"\u0080": "Control",
			"\u00f6": "Latin Small Letter O With Diaeresis",
		};
		expect(canonical(input)).toBe(
			'{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
		);
		// nested objects are sorted too; arrays keep their order
		expect(canonical({ b: [{ z: 1, a: 2 }, 3], a: { d: null, c: true } })).toBe(
			'{"a":{"c":true,"d":null},"b":[{"a":2,"z":1},3]}',
		);
	});

	it("escapes only what it must: control characters as \\u00xx (lower case) or their short forms, nothing else", () => {
		expect(canonical('\u0000\u0001\u001f\b\t\n\f\r"\\/\u007f\u2028\u00e9\u{1F600}')).toBe(
			'"\\u0000\\u0001\\u001f\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028\u00e9\u{1F600}"',
		);
	});

	// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text
	it.each([
		["0000000000000000", "0"],
		["8000000000000000", "0"],
		["0000000000000001", "5e-324"],
		["8000000000000001", "-5e-324"],
		["7fefffffffffffff", "1.7976931348623157e+308"],
		["ffefffffffffffff", "-1.7976931348623157e+308"],
		["4340000000000000", "9007199254740992"],
		["c340000000000000", "-9007199254740992"],
		["4430000000000000", "295147905179352830000"],
		["44b52d02c7e14af5", "9.999999999999997e+22"],
		["44b52d02c7e14af6", "1e+23"],
		["44b52d02c7e14af7", "1.0000000000000001e+23"],
		["444b1ae4d6e2ef4e", "999999999999999700000"],
		["444b1ae4d6e2ef4f", "999999999999999900000"],
		["444b1ae4d6e2ef50", "1e+21"],
		["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
		["3eb0c6f7a0b5ed8d", "0.000001"],
		["41b3de4355555553", "333333333.3333332"],
		["41b3de4355555554", "333333333.33333325"],
		["41b3de4355555555", "333333333.3333333"],
		["41b3de4355555556", "333333333.3333334"],
		["41b3de4355555557", "333333333.33333343"],
		["becbf647612f3696", "-0.0000033333333333333333"],
		["43143ff3c1cb0959", "1424953923781206.2"],
	])("the double 0x%s is %s", (bits, text) => {
		const n = Buffer.from(bits, "hex").readDoubleBE(0);
		expect(canonical(n)).toBe(text);
		expect(canonical([n])).toBe(`[${text}]`);
	});

	it("numbers as JSON text spells them: 1e21, 1E+21 and 1000000000000000000000 are one value; -0 is 0", () => {
		expect(
			canonical(JSON.parse('{"a": 1000000000000000000000, "b": 1E21, "c": -0, "d": -0.0, "e": 1.50, "f": 100e-2}')),
		).toBe('{"a":1e+21,"b":1e+21,"c":0,"d":0,"e":1.5,"f":1}');
		expect(canonical(JSON.parse("[999999999999999999999, 1e20, 12345678901234567890]"))).toBe(
			"[1e+21,100000000000000000000,12345678901234567000]",
		);
	});
});

describe("diffLineage", () => {
	const base = Array.from({ length: 50 }, (_, i) => ({ prompt: `q${i}`, completion: `a${i}` }));
	const older = lineageOf(base);

	it("the same version: nothing added or removed", () => {
		expect(diffLineage(older, lineageOf(base))).toEqual({ added: [], removed: [] });
	});

	it("a changed record is one added (new numbering) and one removed (old numbering)", () => {
		const changed = base.map((r, i) => (i === 20 ? { ...r, completion: "poisoned" } : r));
		expect(diffLineage(older, lineageOf(changed))).toEqual({ added: [20], removed: [20] });
	});

	it("inserted records are added at their new positions; deleted ones removed at their old positions", () => {
		const edited = [...base];
		edited.splice(30, 1); // delete old 30
		edited.splice(5, 0, { prompt: "new", completion: "one" }); // insert at new 5
		edited.push({ prompt: "new", completion: "two" });
		expect(diffLineage(older, lineageOf(edited))).toEqual({ added: [5, 50], removed: [30] });
	});

	it("moved records (reordered, reversed, resharded) are neither added nor removed", () => {
		expect(diffLineage(older, lineageOf([...base].reverse()))).toEqual({ added: [], removed: [] });
		const moved = [...base];
		const [r] = moved.splice(3, 1);
		moved.push(r as (typeof base)[number]);
		expect(diffLineage(older, lineageOf(moved))).toEqual({ added: [], removed: [] });
	});

	it("counts copies: a second copy of a record is added, a dropped copy removed", () => {
		const twice = [...base, base[7] as (typeof base)[number]];
		expect(diffLineage(older, lineageOf(twice))).toEqual({ added: [50], removed: [] });
		expect(diffLineage(lineageOf(twice), older)).toEqual({ added: [], removed: [50] });
	});

	it("against an empty version everything is added", () => {
		expect(diffLineage(lineageOf([]), older)).toEqual({ added: base.map((_, i) => i), removed: [] });
	});
});
