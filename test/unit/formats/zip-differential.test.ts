/**
 * zip.ts against the real loaders on 2,400 mutated archives (make_differential.py): the python view against
 * CPython's zipfile (3.8 … 3.13: they agree on every input), the miniz view against torch's PyTorchFileReader.
 * For every name a loader opens, the bytes it reads must be the bytes our view reads — or our view refuses
 * where it cannot be sure (an error, which callers turn into a fail-closed verdict), for the reasons listed.
 */
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { findEntry, listZip, listZipView, readEntry, type ZipListing } from "../../../lib/core/formats/zip";
import { type Case, describeCase, loadCorpus, sha16 } from "../../fixtures/differential/corpus";

type Read = [name: string, len: number, sha: string | null, err: string | null];
/** torch 1.13 ignores a deflate stream miniz cannot finish and returns its buffer, the rest uninitialised. */
const UNINITIALISED = "uninitialised memory";
type Outcome = { e: string } | { names: string[] | null; reads: Read[] };
interface ZipExpected {
	python: Outcome;
	other?: Record<string, Outcome>;
	miniz: Outcome;
}

const corpus = loadCorpus<ZipExpected>("zip");
const LIMIT = 8 * 1024 * 1024;

/** Refusals that are ours by design (documented in zip.ts): the loader reads it, we fail closed. */
const OUR_REFUSALS = /is not decoded here|inflates past|corrupt deflate data/;

async function checkPython(c: Case<ZipExpected>, py: Outcome, problems: string[], stats: Record<string, number>) {
	const src = new BufferSource(c.bytes);
	const ours = await listZipView(src, "python");
	if ("e" in py) {
		stats[typeof ours === "string" ? "both refuse" : "python refuses, ours lists"] =
			(stats[typeof ours === "string" ? "both refuse" : "python refuses, ours lists"] ?? 0) + 1;
		return;
	}
	if (typeof ours === "string") {
		problems.push(`${describeCase(c)}: zipfile lists ${JSON.stringify(py.names)}, ours refuses: ${ours}`);
		return;
	}
	const names = ours.entries.map((e) => e.name);
	if (JSON.stringify(names) !== JSON.stringify(py.names))
		problems.push(`${describeCase(c)}: zipfile lists ${JSON.stringify(py.names)}, ours ${JSON.stringify(names)}`);
	for (const [name, len, hash, err] of py.reads) {
		const e = findEntry(ours, name);
		if (!e) {
			problems.push(`${describeCase(c)}: zipfile opens ${JSON.stringify(name)}, ours finds no such entry`);
			continue;
		}
		const r = await readEntry(src, e, LIMIT);
		if ("error" in r) {
			if (err === null && !OUR_REFUSALS.test(r.error))
				problems.push(
					`${describeCase(c)}: zipfile reads ${len} bytes of ${JSON.stringify(name)}, ours refuses: ${r.error}`,
				);
			stats[err === null ? "ours refuses a read (by design)" : "both fail the read"] =
				(stats[err === null ? "ours refuses a read (by design)" : "both fail the read"] ?? 0) + 1;
			continue;
		}
		if (err === null) {
			if (r.data.length !== len || sha16(r.data) !== hash)
				problems.push(
					`${describeCase(c)}: ${JSON.stringify(name)}: zipfile reads ${len} bytes (${hash}), ours ${r.data.length} (${sha16(r.data)})`,
				);
			else stats["same bytes"] = (stats["same bytes"] ?? 0) + 1;
		} else if (r.data.length < len || sha16(r.data.subarray(0, len)) !== hash) {
			problems.push(
				`${describeCase(c)}: ${JSON.stringify(name)}: zipfile reads ${len} bytes then ${err}; ours reads ${r.data.length}, not starting with them`,
			);
		} else stats["same prefix (zipfile then fails)"] = (stats["same prefix (zipfile then fails)"] ?? 0) + 1;
	}
}

async function checkMiniz(c: Case<ZipExpected>, problems: string[], stats: Record<string, number>) {
	const mz = c.expected.miniz;
	const src = new BufferSource(c.bytes);
	const ours = await listZipView(src, "miniz");
	if ("e" in mz) {
		stats[typeof ours === "string" ? "both refuse" : "torch refuses, ours lists"] =
			(stats[typeof ours === "string" ? "both refuse" : "torch refuses, ours lists"] ?? 0) + 1;
		return;
	}
	if (typeof ours === "string") {
		problems.push(`${describeCase(c)}: torch opens the archive, ours refuses: ${ours}`);
		return;
	}
	if (ours.archiveName === undefined) {
		problems.push(`${describeCase(c)}: torch opens the archive, ours finds no archive folder`);
		return;
	}
	const prefix = `${ours.archiveName}/`;
	if (mz.names !== null) {
		// torch lists names as C strings (cut at a NUL); lookups compare the whole name
		const names = ours.entries.map((e) =>
			Buffer.from(e.name.split("\0")[0] as string, "latin1")
				.toString("utf8")
				.slice(prefix.length),
		);
		if (JSON.stringify(names) !== JSON.stringify(mz.names))
			problems.push(`${describeCase(c)}: torch lists ${JSON.stringify(mz.names)}, ours ${JSON.stringify(names)}`);
	}
	for (const [name, len, hash, err] of mz.reads) {
		const e = findEntry(ours, Buffer.from(prefix + name, "utf8").toString("latin1"));
		if (err !== null && err !== UNINITIALISED) {
			// torch fails the record: ours may not find it, refuse it, or read it
			stats["both fail the read (or ours reads more)"] = (stats["both fail the read (or ours reads more)"] ?? 0) + 1;
			continue;
		}
		if (!e) {
			problems.push(`${describeCase(c)}: torch reads record ${JSON.stringify(name)}, ours finds no such entry`);
			continue;
		}
		const r = await readEntry(src, e, LIMIT);
		if ("error" in r) {
			problems.push(
				`${describeCase(c)}: torch reads ${len} bytes of ${JSON.stringify(name)}, ours refuses: ${r.error}`,
			);
			continue;
		}
		if (err === UNINITIALISED || r.truncated !== undefined) {
			// torch's buffer holds what inflated, then uninitialised memory: ours must say so and give the first part
			if (err !== UNINITIALISED || r.truncated === undefined || r.data.length >= len)
				problems.push(
					`${describeCase(c)}: ${JSON.stringify(name)}: torch ${err === UNINITIALISED ? "reads uninitialised memory" : `reads ${len} bytes`}, ours ${r.data.length} bytes${r.truncated ? ` (${r.truncated})` : ""}`,
				);
			stats["torch reads our bytes then uninitialised memory"] =
				(stats["torch reads our bytes then uninitialised memory"] ?? 0) + 1;
			continue;
		}
		if (hash === null) continue;
		if (r.data.length !== len || sha16(r.data) !== hash)
			problems.push(
				`${describeCase(c)}: record ${JSON.stringify(name)}: torch reads ${len} bytes (${hash}), ours ${r.data.length} (${sha16(r.data)})`,
			);
		else stats["same bytes"] = (stats["same bytes"] ?? 0) + 1;
	}
}

function report(problems: string[], stats: Record<string, number>): void {
	if (process.env.DIFF_STATS) console.log(JSON.stringify(stats));
	expect(problems.slice(0, 30), `${problems.length} disagreements; outcomes ${JSON.stringify(stats)}`).toEqual([]);
}

describe(`zip views against the real loaders (${corpus.cases.length} mutated archives)`, () => {
	it(`python view: every name zipfile lists, every byte it reads (${corpus.oracles.python} and ${Object.keys(corpus.oracles).length - 2} other interpreters)`, async () => {
		const problems: string[] = [];
		const stats: Record<string, number> = {};
		for (const c of corpus.cases) {
			await checkPython(c, c.expected.python, problems, stats);
			// other interpreters are recorded only where they read something else
			for (const [label, o] of Object.entries(c.expected.other ?? {})) {
				const before = problems.length;
				await checkPython(c, o, problems, stats);
				for (let i = before; i < problems.length; i++) problems[i] = `[${label}] ${problems[i]}`;
			}
		}
		expect(stats["same bytes"]).toBeGreaterThan(3000);
		report(problems, stats);
	});

	it(`miniz view: every record torch reads (${corpus.oracles.miniz})`, async () => {
		const problems: string[] = [];
		const stats: Record<string, number> = {};
		for (const c of corpus.cases) await checkMiniz(c, problems, stats);
		expect(stats["same bytes"]).toBeGreaterThan(900);
		report(problems, stats);
	});

	it("the lenient listing holds every entry of both views (a scanner searching it misses no view)", async () => {
		const problems: string[] = [];
		for (const c of corpus.cases) {
			const src = new BufferSource(c.bytes);
			const all = await listZip(src);
			for (const view of ["python", "miniz"] as const) {
				const v = await listZipView(src, view);
				if (typeof v === "string") continue;
				if (typeof all === "string") {
					problems.push(`${describeCase(c)}: the ${view} view lists entries, listZip refuses: ${all}`);
					continue;
				}
				for (const e of v.entries)
					if (!all.entries.some((a) => sameEntry(a, e)))
						problems.push(
							`${describeCase(c)}: listZip lacks ${view} entry ${JSON.stringify(e.name)} @ ${e.localHeaderOffset}`,
						);
			}
		}
		report(problems, {});
	});
});

const sameEntry = (a: ZipListing["entries"][number], b: ZipListing["entries"][number]) =>
	a.localHeaderOffset === b.localHeaderOffset && a.method === b.method && a.compressedSize === b.compressedSize;
