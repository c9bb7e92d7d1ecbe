/**
 * tar.ts against CPython's tarfile (`tarfile.open(fileobj=f, mode="r:")` and getmembers(), as torch.load opens a
 * legacy checkpoint) on 3,000 archives (make_differential.py): tarfile's own ustar, GNU and PAX archives (long names
 * and links, directories, links, devices, base-256 numbers, global and per-member PAX headers), hand-written ones
 * (PAX size overrides, malformed PAX records, GNU long names, sparse members, V7 directories, number field
 * spellings, signed checksums, zero blocks, truncation) and their mutations (header fields rewritten with the
 * checksum fixed, PAX records rewritten, blocks dropped, duplicated, inserted, spliced, bytes flipped).
 *
 * - Where tarfile lists members without error, listTar lists the same: names, types, sizes, header and data
 *   offsets, link names.
 * - Where tarfile raises ReadError (a TarError: torch.load then reads the file as a legacy pickle), listTar says so:
 *   "not a tar" when it fails on the first header, else `readError` after the same members.
 * - Where listTar says `unsupported` (callers fail closed: the archive is unscanned), the members it gives are the
 *   first ones tarfile lists, and what it stops at is there: a member tarfile lists as sparse, or with a negative or
 *   huge size, or tarfile's listing stops right there with an error (ValueError and OverflowError are such: no
 *   TarError, torch.load fails outright) — or, for PAX records, an older release that lists otherwise.
 * - tarfile releases differ: before the 2024 PAX fix (3.8.18 … 3.12.1 here) records were read leniently, and before
 *   3.10 a GNU long name kept a directory's trailing "/". listTar reads as current releases do and says
 *   `unsupported` where the lenient reading gives other members; the trailing "/" of directories (no data) aside,
 *   it agrees with every release.
 */
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { listTar, type TarListing } from "../../../lib/core/formats/tar";
import { type Case, describeCase, loadCorpus } from "../../fixtures/differential/corpus";

/** [name, type, size, header offset, data offset, linkname, sparse] */
type PyMember = [string, string, number, number, number, string, boolean];
interface Listing {
	m: PyMember[];
	/** "ReadError: …", another exception, or null when the listing ran to the end */
	err: string | null;
}
interface TarExpected {
	python: Listing;
	other?: Record<string, Listing>;
}

const corpus = loadCorpus<TarExpected>("tar");

/** Reasons listTar stops on and its callers fail closed on. */
const FAIL_CLOSED =
	/^(GNU sparse member|negative (member|PAX) size|extension record of|size beyond|PAX (number .* is not ASCII|\S+ is not an integer)|PAX records read otherwise|more than \d+ (extension records|members))/;

type Member6 = [string, string, number, number, number, string];
const ours = (l: TarListing): Member6[] =>
	l.members.map((m) => [m.name, m.type, m.size, m.headerOffset, m.dataOffset, m.linkname]);

function check(
	c: Case<TarExpected>,
	label: string,
	r: TarListing | string,
	py: Listing,
	problems: string[],
	stats: Record<string, number>,
	dirSlash = false,
) {
	const count = (k: string) => {
		stats[k] = (stats[k] ?? 0) + 1;
	};
	const where = `${describeCase(c)} [${label}]`;
	const norm = (ms: (PyMember | Member6)[]): string =>
		JSON.stringify(ms.map((m) => [dirSlash && m[1] === "5" ? m[0].replace(/\/+$/, "") : m[0], ...m.slice(1, 6)]));
	const pyKind = py.err === null ? "ok" : py.err.startsWith("ReadError") ? "ReadError" : "other";
	if (typeof r === "string") {
		if (pyKind === "ReadError" && py.m.length === 0) return count("both: not a tar");
		return void problems.push(`${where}: tarfile ${py.err ?? "lists"} ${py.m.length} members; ours: not a tar (${r})`);
	}
	const mine = ours(r);
	if (r.unsupported !== undefined) {
		const next = py.m[mine.length];
		const there = r.unsupported.startsWith("PAX records read otherwise")
			? Object.keys(c.expected.other ?? {}).length > 0
			: (next === undefined && py.err !== null) ||
				(next !== undefined && (next[6] || next[2] < 0 || next[2] >= 2 ** 63));
		if (!FAIL_CLOSED.test(r.unsupported))
			problems.push(`${where}: unsupported for an unknown reason: ${r.unsupported}`);
		else if (norm(py.m.slice(0, mine.length)) !== norm(mine))
			problems.push(`${where}: unsupported after members tarfile does not list first: ${norm(mine)} vs ${norm(py.m)}`);
		else if (label === "python" && !there)
			problems.push(`${where}: unsupported (${r.unsupported}) where tarfile lists ${JSON.stringify(next)} (${py.err})`);
		else count(`ours unsupported (tarfile: ${pyKind})`);
		return;
	}
	if (pyKind === "other") return void problems.push(`${where}: tarfile raises ${py.err}; ours ${norm(mine)}`);
	if (norm(mine) !== norm(py.m))
		return void problems.push(`${where}: members ${norm(mine)} vs tarfile's ${norm(py.m)}`);
	if ((r.readError !== undefined) !== (pyKind === "ReadError"))
		return void problems.push(`${where}: tarfile ${py.err ?? "ends cleanly"}; ours readError ${r.readError}`);
	count(pyKind === "ok" ? "same members" : "same members, then ReadError");
}

describe(`tar listing against CPython's tarfile (${corpus.cases.length} archives)`, () => {
	it("lists what tarfile lists, fails where it fails, and is unsupported only where it fails closed", async () => {
		const problems: string[] = [];
		const stats: Record<string, number> = {};
		for (const c of corpus.cases) {
			const r = await listTar(new BufferSource(c.bytes));
			check(c, "python", r, c.expected.python, problems, stats);
			for (const [label, o] of Object.entries(c.expected.other ?? {}))
				check(c, label, r, o, problems, {}, /cpython-3\.[89]\./.test(label));
		}
		if (process.env.DIFF_STATS) console.log(JSON.stringify(stats, null, 1));
		expect(problems.slice(0, 40), `${problems.length} disagreements; ${JSON.stringify(stats)}`).toEqual([]);
		expect(stats["same members"]).toBeGreaterThan(1000);
		expect(stats["both: not a tar"]).toBeGreaterThan(500);
		expect(stats["same members, then ReadError"]).toBeGreaterThan(100);
	});
});
