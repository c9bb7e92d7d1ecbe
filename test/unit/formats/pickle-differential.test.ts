/**
 * pickle.ts against CPython's own unpickler (the C one every loader uses; 3.8 … 3.13) on 4,000 pickles
 * (make_differential.py): real pickles of protocols 0–5, hand-written programs (PERSID, EXT, STRING quoting, escapes,
 * number forms, FRAME, MEMOIZE, NEWOBJ_EX, buffers, values of the wrong type for APPEND, SETITEM, BUILD, REDUCE …)
 * and their mutations. The oracle's find_class records (module, name) and returns a stand-in on which every call and
 * method the unpickler uses succeeds, so it reaches every global a load could.
 *
 * Each pickle is loaded four ways: with and without a persistent_load (torch.load's unpickler has one, pickle.load's
 * not: `plainLoader`), from memory and through an io.BytesIO (which drops what a FRAME's buffer holds past an
 * argument that runs over its end: `firstPickle.file`).
 * - No miss: every global CPython imports is one ours reports.
 * - Same reach: ours imports exactly as many globals as CPython before the load stops, and ends where CPython ends
 *   (at its STOP, at the same offset, or failing) — "fails before any global" (harmless) agrees in both directions.
 * - Where ours goes on past CPython's failure, it is only on an assumption it records at that very operation, with
 *   CPython's count of globals: a global being of the type checked (the stand-in is no str, tuple, int …), a memo
 *   array CPython could not allocate under the oracle's 2 GiB, out-of-band buffers the loader was not given.
 */
import { describe, expect, it } from "vitest";
import { type AnalyzeOptions, analyzePickle, type LoadOutcome } from "../../../lib/core/formats/pickle";
import { type Case, describeCase, loadCorpus } from "../../fixtures/differential/corpus";

interface Outcome {
	/** (module, name) in the order find_class was called */
	g: [string, string][];
	/** "stop", or the exception that ended the load */
	end: string;
	/** file position when it ended */
	pos: number;
}
interface PickleExpected {
	/** io.BytesIO, with a persistent_load */
	python: Outcome;
	/** from memory (where it differs from python) */
	mem?: Outcome;
	/** without a persistent_load (where it differs from python) */
	plain?: Outcome;
	/** without a persistent_load, from memory (where it differs from plain) */
	plain_mem?: Outcome;
	/** "cpython-3.x/mode" where another interpreter differs */
	other?: Record<string, Outcome>;
}

const corpus = loadCorpus<PickleExpected>("pickle");

const WHY_ERRORS: Record<NonNullable<LoadOutcome["assumed"]>["why"], RegExp> = {
	global: /^(TypeError|UnpicklingError|AttributeError|ValueError|IndexError)/,
	memory: /^MemoryError/,
	buffers: /out-of-band/,
};

function check(
	c: Case<PickleExpected>,
	label: string,
	ours: LoadOutcome,
	all: Set<string>,
	py: Outcome,
	problems: string[],
	stats: Record<string, number>,
) {
	const count = (k: string) => {
		stats[k] = (stats[k] ?? 0) + 1;
	};
	const where = `${describeCase(c)} [${label}]`;
	for (const [m, n] of py.g)
		if (!all.has(`${m}.${n}`)) problems.push(`${where}: CPython imports ${m}.${n}, ours misses it (ours: ${[...all]})`);
	const pyStops = py.end === "stop";
	const same =
		ours.globals === py.g.length && pyStops === (ours.end === "stop") && (!pyStops || ours.offset === py.pos);
	if (same)
		return count(pyStops ? "both stop" : py.g.length === 0 ? "both fail before any global" : "both fail after globals");
	const a = ours.assumed;
	if (a !== undefined && !pyStops && a.globals === py.g.length && WHY_ERRORS[a.why].test(py.end))
		return count(`CPython fails where ours assumes (${a.why})`);
	problems.push(
		`${where}: CPython imports ${py.g.length} then ${pyStops ? `stops at ${py.pos}` : py.end}; ` +
			`ours ${ours.globals} then ${ours.end} at ${ours.offset}${a ? ` (assumed ${JSON.stringify(a)})` : ""}`,
	);
}

describe(`pickle analysis against CPython's unpickler (${corpus.cases.length} pickles)`, () => {
	it("every global CPython imports is reported, and the load ends where CPython's does", () => {
		const problems: string[] = [];
		const stats: Record<string, number> = {};
		const loaders: [string, AnalyzeOptions, (e: PickleExpected) => Outcome, (e: PickleExpected) => Outcome][] = [
			[
				"persistent_load",
				{ policy: { allowPickle: true }, emptyExtensionRegistry: true },
				(e) => e.python,
				(e) => e.mem ?? e.python,
			],
			[
				"plain",
				{ policy: { allowPickle: true }, plainLoader: true },
				(e) => e.plain ?? e.python,
				(e) => e.plain_mem ?? e.plain ?? e.python,
			],
		];
		for (const c of corpus.cases) {
			for (const [name, options, file, mem] of loaders) {
				const a = analyzePickle(c.bytes, { ...options, maxPickles: 1, resync: false, unpickler: "c" });
				const all = new Set(a.globals.map((g) => `${g.module}.${g.name}`));
				const fileOutcome = a.firstPickle.file ?? a.firstPickle;
				check(c, `${name}, BytesIO`, fileOutcome, all, file(c.expected), problems, stats);
				check(c, `${name}, memory`, a.firstPickle, all, mem(c.expected), problems, stats);
				for (const [label, o] of Object.entries(c.expected.other ?? {})) {
					const mode = label.split("/")[1];
					if (name === "plain" ? mode?.startsWith("plain") : !mode?.startsWith("plain"))
						check(c, label, mode?.endsWith("mem") ? a.firstPickle : fileOutcome, all, o, problems, stats);
				}
			}
		}
		if (process.env.DIFF_STATS) console.log(JSON.stringify(stats, null, 1));
		expect(problems.slice(0, 40), `${problems.length} disagreements; ${JSON.stringify(stats)}`).toEqual([]);
		expect(stats["both fail before any global"]).toBeGreaterThan(2000);
		expect(stats["both stop"]).toBeGreaterThan(1000);
		// going on past CPython's failure is the rare exception, never the rule
		const assumed = Object.entries(stats)
			.filter(([k]) => k.startsWith("CPython fails where ours assumes"))
			.reduce((n, [, v]) => n + v, 0);
		expect(assumed).toBeLessThan(corpus.cases.length * 4 * 0.03);
	});

	it("the scanners' reading (any unpickler, any encoding) misses no global CPython's unpickler imports", () => {
		// unpickler "any" goes on wherever some loader does (pickle._Unpickler, latin1 / utf-8): never fewer imports
		const problems: string[] = [];
		for (const c of corpus.cases) {
			for (const [name, options, outcome] of [
				["persistent_load", { policy: { allowPickle: true }, emptyExtensionRegistry: true }, c.expected.python],
				["plain", { policy: { allowPickle: true }, plainLoader: true }, c.expected.plain ?? c.expected.python],
			] as const) {
				const a = analyzePickle(c.bytes, { ...options, maxPickles: 1, resync: false });
				const all = new Set(a.globals.map((g) => `${g.module}.${g.name}`));
				for (const [m, n] of outcome.g)
					if (!all.has(`${m}.${n}`)) problems.push(`${describeCase(c)} [${name}]: misses ${m}.${n}`);
				if (a.firstPickle.globals < outcome.g.length)
					problems.push(`${describeCase(c)} [${name}]: reaches ${a.firstPickle.globals} < ${outcome.g.length}`);
			}
		}
		expect(problems.slice(0, 20), `${problems.length} misses`).toEqual([]);
	});

	it("reads a FRAME through a file object as io.BytesIO does: the bytes left in its buffer are dropped", () => {
		// FRAME of 3 bytes: N M\x05 — M's argument runs past the frame. From memory it is \x05\x00 and \xff follows (no
		// such opcode); through io.BytesIO it is \x00\xff (\x05 is dropped) and the global follows.
		const p = Buffer.from("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00NM\x05\x00\xffcos\nsystem\n.", "latin1");
		const a = analyzePickle(p, { policy: { allowPickle: true }, maxPickles: 1, resync: false, unpickler: "c" });
		expect(a.firstPickle).toMatchObject({
			end: "error",
			globals: 0,
			file: { end: "stop", globals: 1, offset: p.length },
		});
		expect(a.globals.map((g) => `${g.module}.${g.name}`)).toEqual(["os.system"]);
	});
});
