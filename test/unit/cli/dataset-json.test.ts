/**
 * The dataset report's JSON written in pieces: the leaf prefixes (107 MB of base64 at 10^7 records) go out as they
 * are, in slices, not copied into the document's string; the pieces joined are the same document JSON.stringify makes.
 */
import { describe, expect, it } from "vitest";
import { lineagePieces } from "../../../lib/cli/dataset";

describe("lineagePieces", () => {
	it("joined, the pieces are JSON.stringify's document; the prefixes are sliced, never escaped or copied whole", () => {
		const prefixes = Buffer.alloc(8 * 1000, 7).toString("base64");
		const doc = {
			ok: false,
			findings: [{ message: 'a "quoted" leaf_prefixes \u0000 message' }],
			lineage: { version: 1, records: 1000, leaf_prefixes: prefixes },
			timings: { total_ms: 3 },
		};
		const pieces = lineagePieces(doc, prefixes, 1000);
		expect(pieces.join("")).toBe(`${JSON.stringify(doc, null, 2)}\n`);
		expect(pieces.filter((p) => p.length === 1000).length).toBe(Math.floor(prefixes.length / 1000));
		expect(pieces.some((p) => p.includes(prefixes))).toBe(false);
	});

	it("a document without the mark is written whole", () => {
		expect(lineagePieces({ a: 1 }, "")).toEqual([`${JSON.stringify({ a: 1 }, null, 2)}\n`]);
	});
});
