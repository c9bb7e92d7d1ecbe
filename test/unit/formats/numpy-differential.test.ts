/**
 * numpy.ts's header parser against `np.load(f, allow_pickle=True)` itself (numpy 1.24 and 2.x), on 3,000
 * generated and mutated .npy files (make_differential.py): every spelling of descr, shape and fortran_order,
 * literal syntax (quotes, escapes, concatenation, comments, L suffixes, duplicate keys), versions, lengths.
 * Whenever numpy unpickles, ours must say "object" with the same data offset: no miss is allowed.
 */
import { describe, expect, it } from "vitest";
import { parseNpyHeader } from "../../../lib/core/formats/numpy";
import { type Case, describeCase, loadCorpus } from "../../fixtures/differential/corpus";

type Outcome = { k: "pickle"; at: number } | { k: "array" } | { k: "npz" } | { k: "error"; e: string };
interface NpyExpected {
	numpy: Outcome;
	other?: Record<string, Outcome>;
}

const corpus = loadCorpus<NpyExpected>("npy");
const MAGIC = Buffer.from("\x93NUMPY", "latin1");

/** numpy unpickles spellings we refuse for these reasons only (the verdict is then malformed: fail closed). */
const OUR_REFUSALS = /\\N\{\.\.\.\} escapes are not modelled/;

function outcomes(c: Case<NpyExpected>): [string, Outcome][] {
	return [["numpy", c.expected.numpy], ...Object.entries(c.expected.other ?? {})];
}

describe(`.npy headers against np.load (${corpus.cases.length} inputs; ${Object.values(corpus.oracles).join(", ")})`, () => {
	it("wherever numpy unpickles, ours says object with the same data offset", () => {
		const problems: string[] = [];
		const stats: Record<string, number> = {};
		const count = (k: string) => {
			stats[k] = (stats[k] ?? 0) + 1;
		};
		for (const c of corpus.cases) {
			if (!c.bytes.subarray(0, 6).equals(MAGIC)) continue;
			const h = parseNpyHeader(c.bytes);
			for (const [label, o] of outcomes(c)) {
				if (o.k === "pickle") {
					if (typeof h === "string") {
						if (OUR_REFUSALS.test(h)) count("numpy unpickles, ours refuses (by design)");
						else problems.push(`${describeCase(c)}: ${label} unpickles at ${o.at}, ours refuses: ${h}`);
					} else if (!h.object) problems.push(`${describeCase(c)}: ${label} unpickles at ${o.at}, ours sees no object`);
					else if (h.dataOffset !== o.at)
						problems.push(`${describeCase(c)}: ${label} unpickles at ${o.at}, ours at ${h.dataOffset}`);
					else count("both unpickle");
				} else if (o.k === "array") {
					if (typeof h === "string")
						problems.push(`${describeCase(c)}: ${label} loads a plain array, ours refuses: ${h}`);
					else if (h.object) count("numpy loads a plain array, ours cautious (object)");
					else count("both plain");
				} else if (typeof h === "string") count("both refuse");
				else count(h.object ? "numpy refuses, ours object (cautious)" : "numpy refuses, ours plain");
			}
		}
		if (process.env.DIFF_STATS) console.log(JSON.stringify(stats));
		expect(stats["both unpickle"]).toBeGreaterThan(400);
		expect(problems.slice(0, 40), `${problems.length} disagreements; ${JSON.stringify(stats)}`).toEqual([]);
		// cautious answers stay rare: a plain array numpy loads is object-free to us
		expect(stats["numpy loads a plain array, ours cautious (object)"] ?? 0).toBe(0);
	});

	it("a file without the magic is unpickled from byte 0 by np.load(allow_pickle=True) (a zip is an npz)", () => {
		const noMagic = corpus.cases.filter((c) => !c.bytes.subarray(0, 6).equals(MAGIC) && c.bytes.length > 0);
		const byKind = (k: string) => noMagic.filter((c) => c.expected.numpy.k === k).map((c) => c.from);
		expect(byKind("pickle")).toEqual(expect.arrayContaining(["no magic: pickle", "no magic: near miss"]));
		for (const c of noMagic) {
			const o = c.expected.numpy;
			if (c.bytes.subarray(0, 2).toString("latin1") === "PK") expect(o.k, describeCase(c)).toBe("npz");
			else if (o.k === "pickle") expect(o.at, describeCase(c)).toBe(0);
		}
	});
});
