/**
 * Mutation fuzzing of every pickle / torch / numpy fixture: bit flips,
 * truncations and length-field overwrites. Each mutated file must come back as
 * a ScanResult (never an exception), quickly. The CI part is bounded; `npm run fuzz`
 * sets FUZZ_RUNS for a longer run.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { npzScanner, numpyScanner } from "../../../lib/core/formats/numpy";
import { pickleScanner } from "../../../lib/core/formats/pickle-scanner";
import { pytorchLegacyScanner, pytorchZipScanner } from "../../../lib/core/formats/pytorch";
import { pytorchTarScanner } from "../../../lib/core/formats/pytorch-tar";
import { BufferSource } from "../../../lib/core/formats/source";
import { type Scanner, verdictOf } from "../../../lib/core/formats/types";

const DIR = join(__dirname, "../../fixtures/pickle");
const RUNS = Number(process.env.FUZZ_RUNS ?? process.env.FTGUARD_FUZZ_RUNS ?? 200);
const SCANNERS = [pytorchTarScanner, pytorchLegacyScanner, pytorchZipScanner, npzScanner, numpyScanner, pickleScanner];

const fixtures = readdirSync(DIR)
	.filter((f) => !f.endsWith(".py") && statSync(join(DIR, f)).isFile())
	.sort()
	.map((name) => {
		const bytes = readFileSync(join(DIR, name));
		const scanner = SCANNERS.find((s) => s.detect(bytes.subarray(0, 65536), name, bytes.length));
		if (!scanner) throw new Error(`no scanner claims ${name}`);
		return { name, bytes, scanner };
	});

const groups = new Map<string, typeof fixtures>();
for (const f of fixtures) groups.set(f.scanner.format, [...(groups.get(f.scanner.format) ?? []), f]);

/** One mutation: flip bits, truncate, or overwrite a 1/2/4/8-byte field with an extreme value. */
const mutation = fc.oneof(
	fc.record({
		kind: fc.constant("flip" as const),
		at: fc.nat(),
		bit: fc.integer({ min: 0, max: 7 }),
		n: fc.integer({ min: 1, max: 8 }),
	}),
	fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
	fc.record({
		kind: fc.constant("field" as const),
		at: fc.nat(),
		width: fc.constantFrom(1, 2, 4, 8),
		value: fc.constantFrom(0, 1, 0x7f, 0xff, 0x7fffffff, 0xffffffff, 0x80000000, 65535, 1 << 20),
	}),
);

function mutate(src: Buffer, m: Mutation, seed: number): Buffer {
	const b = Buffer.from(src);
	if (b.length === 0) return b;
	const at = m.at % b.length;
	if (m.kind === "truncate") return b.subarray(0, at);
	if (m.kind === "flip") {
		for (let i = 0; i < m.n; i++) {
			const p = (at + i * (seed % 97) * 31) % b.length;
			b[p] = (b[p] as number) ^ (1 << ((m.bit + i) % 8));
		}
		return b;
	}
	for (let i = 0; i < m.width && at + i < b.length; i++) {
		b[at + i] = Math.floor(m.value / 2 ** (8 * i)) & 0xff;
	}
	return b;
}

type Mutation =
	| { kind: "flip"; at: number; bit: number; n: number }
	| { kind: "truncate"; at: number }
	| { kind: "field"; at: number; width: number; value: number };

async function scanOnce(scanner: Scanner, bytes: Buffer, allowPickle: boolean): Promise<string> {
	const t = Date.now();
	const r = await scanner.scan({ source: new BufferSource(bytes), name: "f", path: "/f", policy: { allowPickle } });
	const v = verdictOf(r);
	// 1 s per file is generous for files of a few KiB; a hang would blow through it.
	expect(Date.now() - t).toBeLessThan(1000 + bytes.length / 1000);
	expect(Array.isArray(r.findings)).toBe(true);
	for (const f of r.findings) expect(["critical", "high", "medium", "low"]).toContain(f.severity);
	// The scanners' catch-all turns an internal exception into "scan-incomplete": none may happen.
	expect(r.findings.filter((f) => f.id === "scan-incomplete")).toEqual([]);
	return v;
}

describe("fuzzing pickle-bearing fixtures", () => {
	for (const [format, members] of groups) {
		it(
			`${format}: ${members.length} fixtures × ${RUNS} mutations give a verdict, never an exception`,
			async () => {
				await fc.assert(
					fc.asyncProperty(
						fc.integer({ min: 0, max: members.length - 1 }),
						fc.array(mutation, { minLength: 1, maxLength: 3 }),
						fc.boolean(),
						fc.nat(),
						async (which, muts, allow, seed) => {
							const f = members[which];
							if (!f) return;
							let bytes: Buffer = f.bytes;
							for (const m of muts) bytes = mutate(bytes, m as Mutation, seed);
							const v = await scanOnce(f.scanner, bytes, allow);
							// A mutation may destroy the payload itself, so only the verdict's existence is checked here.
							expect(["safe", "unsafe", "malformed"]).toContain(v);
							// Every scanner must also survive bytes meant for another format.
							for (const other of SCANNERS) if (other !== f.scanner) await scanOnce(other, bytes, allow);
						},
					),
					{ numRuns: RUNS },
				);
			},
			Math.max(60_000, RUNS * 10),
		);
	}

	it("malicious fixtures stay unsafe when bytes after their payload are truncated or corrupted", async () => {
		for (const f of fixtures.filter((x) => x.name.startsWith("malicious-") && x.name.endsWith(".pkl"))) {
			const r = await f.scanner.scan({
				source: new BufferSource(Buffer.concat([f.bytes, Buffer.from([0xff, 0x00, 0x13])])),
				name: f.name,
				path: f.name,
				policy: { allowPickle: true },
			});
			expect(verdictOf(r), f.name).toBe("unsafe");
		}
	});
});
