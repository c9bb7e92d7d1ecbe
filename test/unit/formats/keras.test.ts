import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kerasConfigFindings, kerasScanner } from "../../../lib/core/formats/keras";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";
import { zip } from "../../helpers/zip";

const dir = join(__dirname, "../../fixtures/formats/keras");
const fx = (n: string) => readFileSync(join(dir, n));

const meta = { name: "metadata.json", data: Buffer.from('{"keras_version":"3.3.3"}') };
const cfg = (v: unknown) => ({ name: "config.json", data: Buffer.from(JSON.stringify(v)) });

describe("keras", () => {
	it("detects .keras archives by their first entry", () => {
		const b = fx("clean.keras");
		expect(kerasScanner.detect(b.subarray(0, 4096), "model.zip", b.length)).toBe(true);
		const other = zip([{ name: "archive/data.pkl", data: Buffer.from("x") }]);
		expect(kerasScanner.detect(other, "model.pt", other.length)).toBe(false);
	});

	it("clean model (written by Python's zipfile) is safe", async () => {
		expect(await scanBuffer(kerasScanner, fx("clean.keras"), "clean.keras")).toEqual({ findings: [] });
	});

	it("Lambda layer → keras-lambda (critical) with its JSON path, also inside a nested model", async () => {
		const r = await scanBuffer(kerasScanner, fx("lambda.keras"), "lambda.keras");
		expect(r.findings).toEqual([
			expect.objectContaining({ id: "keras-lambda", severity: "critical", location: "config.json $.config.layers[1]" }),
		]);
		const n = await scanBuffer(kerasScanner, fx("nested-lambda.keras"), "nested-lambda.keras");
		expect(n.findings).toEqual([
			expect.objectContaining({ id: "keras-lambda", location: "config.json $.config.layers[1].config.layers[1]" }),
		]);
		expect(verdictOf(n)).toBe("unsafe");
	});

	it("custom objects and dangerous modules", async () => {
		const c = await scanBuffer(kerasScanner, fx("custom-object.keras"), "c.keras");
		expect(c.findings).toEqual([expect.objectContaining({ id: "keras-custom-object", severity: "high" })]);
		const g = await scanBuffer(kerasScanner, fx("module-gadget.keras"), "g.keras");
		expect(g.findings).toEqual([expect.objectContaining({ id: "keras-dangerous-module", severity: "critical" })]);
		expect(g.findings[0]?.message).toContain("os");
	});

	it("lambda activations, get_file and TFOpLambda", () => {
		const f = kerasConfigFindings({
			layers: [
				{
					module: "keras.layers",
					class_name: "Dense",
					config: { activation: { class_name: "__lambda__", config: { code: "x" } } },
				},
				{ module: "keras.utils", class_name: "function", config: "get_file" },
				{ class_name: "TFOpLambda", config: { function: "math.add" } },
				{ class_name: "TFOpLambda", config: { function: "io.write_file" } },
			],
		});
		expect(f.map((x) => [x.id, x.severity])).toEqual([
			["keras-lambda", "critical"],
			["keras-custom-object", "high"],
			["keras-tfoplambda", "medium"],
			["keras-lambda", "critical"],
		]);
	});

	it("reads ZIP64 archives (ZIP64 end record and extra fields)", async () => {
		const plain = zip([meta, cfg({ class_name: "Lambda" })]);
		const cdOffset = plain.readUInt32LE(plain.length - 6);
		const cdSize = plain.readUInt32LE(plain.length - 10);
		const locals = plain.subarray(0, cdOffset);
		// rewrite the second central entry with 0xffffffff sizes/offset and a ZIP64 extra field
		const cd = Buffer.from(plain.subarray(cdOffset, cdOffset + cdSize));
		const second = 46 + "metadata.json".length;
		const comp = cd.readUInt32LE(second + 20);
		const uncomp = cd.readUInt32LE(second + 24);
		const lho = cd.readUInt32LE(second + 42);
		cd.writeUInt32LE(0xffffffff, second + 20);
		cd.writeUInt32LE(0xffffffff, second + 24);
		cd.writeUInt32LE(0xffffffff, second + 42);
		cd.writeUInt16LE(28, second + 30);
		const extra = Buffer.alloc(28);
		extra.writeUInt16LE(1, 0);
		extra.writeUInt16LE(24, 2);
		extra.writeBigUInt64LE(BigInt(uncomp), 4);
		extra.writeBigUInt64LE(BigInt(comp), 12);
		extra.writeBigUInt64LE(BigInt(lho), 20);
		const newCd = Buffer.concat([cd, extra]); // second entry is last: the extra field follows its name
		const rec = Buffer.alloc(56);
		rec.writeUInt32LE(0x06064b50, 0);
		rec.writeBigUInt64LE(44n, 4);
		rec.writeBigUInt64LE(2n, 24);
		rec.writeBigUInt64LE(2n, 32);
		rec.writeBigUInt64LE(BigInt(newCd.length), 40);
		rec.writeBigUInt64LE(BigInt(cdOffset), 48);
		const loc = Buffer.alloc(20);
		loc.writeUInt32LE(0x07064b50, 0);
		loc.writeBigUInt64LE(BigInt(cdOffset + newCd.length), 8);
		loc.writeUInt32LE(1, 16);
		const eocd = Buffer.alloc(22);
		eocd.writeUInt32LE(0x06054b50, 0);
		eocd.writeUInt16LE(0xffff, 8);
		eocd.writeUInt16LE(0xffff, 10);
		eocd.writeUInt32LE(0xffffffff, 12);
		eocd.writeUInt32LE(0xffffffff, 16);
		const z64 = Buffer.concat([locals, newCd, rec, loc, eocd]);
		const r = await scanBuffer(kerasScanner, z64, "z64.keras");
		expect(r.malformed).toBeUndefined();
		expect(r.findings).toEqual([expect.objectContaining({ id: "keras-lambda" })]);
	});

	it("reads the last of duplicate config.json entries too", async () => {
		const b = zip([meta, cfg({ class_name: "Sequential" }), cfg({ class_name: "Lambda" })]);
		expect(verdictOf(await scanBuffer(kerasScanner, b, "d.keras"))).toBe("unsafe");
	});

	const cases: Array<[string, Buffer, RegExp]> = [
		["too small", Buffer.from("PK\x03\x04"), /too small/],
		["no EOCD", Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(100)]), /end-of-central-directory/],
		["no config.json", zip([meta]), /no config.json/],
		[
			"bad deflate",
			zip([meta, { name: "config.json", data: Buffer.from("not deflate at all"), method: 0, rawMethod: 8 }]),
			/bad deflate/,
		],
		["unsupported method", zip([meta, { ...cfg({}), method: 0, rawMethod: 14 }]), /method 14/],
		["invalid JSON", zip([meta, { name: "config.json", data: Buffer.from("{") }]), /not valid UTF-8 JSON/],
		[
			"central directory past end",
			(() => {
				const b = zip([meta, cfg({})]);
				b.writeUInt32LE(0x7fffffff, b.length - 6);
				return b;
			})(),
			/past end of file/,
		],
		[
			"absurd entry count",
			(() => {
				const b = zip([meta, cfg({})]);
				b.writeUInt16LE(0xfffe, b.length - 12);
				return b;
			})(),
			/do not fit/,
		],
		[
			"local header offset wrong",
			(() => {
				const b = zip([meta, cfg({})]);
				const cdStart = b.readUInt32LE(b.length - 6);
				const second = cdStart + 46 + "metadata.json".length;
				b.writeUInt32LE(3, second + 42);
				return b;
			})(),
			/bad local header/,
		],
		[
			"missing ZIP64 locator",
			(() => {
				const b = zip([meta, cfg({})]);
				b.writeUInt32LE(0xffffffff, b.length - 6);
				return b;
			})(),
			/ZIP64 locator/,
		],
	];
	for (const [what, buf, re] of cases) {
		it(`malformed: ${what}`, async () => {
			const r = await scanBuffer(kerasScanner, buf, "m.keras");
			expect(r.malformed).toMatch(re);
			expect(verdictOf(r)).toBe("malformed");
		});
	}

	it("a config.json zip bomb is cut at the output bound", async () => {
		const big = Buffer.alloc(65 * 1024 * 1024, 0x20);
		const r = await scanBuffer(kerasScanner, zip([meta, { name: "config.json", data: big }]), "bomb.keras");
		expect(r.malformed).toMatch(/inflates past/);
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(
			kerasScanner,
			["clean.keras", "lambda.keras", "nested-lambda.keras"].map((n) => ({ name: n, bytes: fx(n) })),
			{ runs: 200 },
		);
	});
});
