/**
 * Static pickle analysis: walks the opcode stream as CPython's C unpickler
 * would (protocols 0–5, every opcode of `pickletools`) but never imports or
 * calls anything. A symbolic stack and memo hold what each value is as far as
 * the unpickler's own checks look at it — the module and name strings
 * STACK_GLOBAL takes from the stack (attackers route them through the memo to
 * dodge scanners that only read GLOBAL), numbers, containers and their sizes —
 * so that a load is seen to end where CPython's ends: a value of the wrong type
 * fails REDUCE, BUILD, APPEND, SETITEM… there, and nothing after it runs.
 *
 * A global, and whatever calling or building one gives, is unknown: it is
 * treated as a stand-in that accepts every call and method the unpickler uses
 * (it may be any object), and where the unpickler checks its type (a str for
 * STACK_GLOBAL, a tuple of arguments, an int index…) the load goes on, recorded
 * as an assumption, since a real global may well be one.
 *
 * Work is bounded (opcodes, stack depth, memo size), and no allocation depends
 * on a length field: arguments are subarrays of the input. The hot path
 * allocates little: bytes are skipped, small ints shared, and binary strings
 * kept as offsets, decoded only when STACK_GLOBAL takes them.
 *
 * Checked against CPython 3.8–3.13 on thousands of mutated pickles
 * (test/fixtures/differential/make_differential.py).
 */

import { isUtf8 } from "node:buffer";
import { dangerReason, describeGlobal, isAllowed } from "./pickle-policy";
import { PY_SIMPLE_ESCAPES } from "./python-escapes";
import type { Finding, ScanPolicy } from "./types";

/** A global the pickle imports (GLOBAL, STACK_GLOBAL or INST), with the opcode's offset. */
/** codecs.escape_decode's one-character escapes; a backslash-newline is a line continuation (nothing). */
const STRING_ESCAPES: Readonly<Record<string, string>> = { ...PY_SIMPLE_ESCAPES, "\n": "" };

export interface PickleGlobal {
	module: string;
	name: string;
	offset: number;
}

/** How one `pickle.load` ends. */
export interface LoadOutcome {
	/** At its STOP, failing at an opcode (`error`), running out of bytes (`truncated`), or past our budget. */
	end: "stop" | "error" | "truncated" | "budget";
	/** After STOP: where the stream's next load would start (the file position); else the failing opcode. */
	offset: number;
	/** How many globals it imports (find_class calls) before it ends. */
	globals: number;
	/**
	 * The first operation the load went on past only by assuming something CPython cannot know from the bytes: an
	 * imported global (or what it returned) is of the type the operation checks for (`global`: a str for
	 * STACK_GLOBAL, a tuple, a dict, an int…); a memo index whose array CPython may or may not be able to allocate
	 * (`memory`); out-of-band buffers given to the loader (`buffers`). `globals` is the count before it.
	 */
	assumed?: { offset: number; globals: number; why: "global" | "memory" | "buffers" };
}

export interface PickleAnalysis {
	findings: Finding[];
	globals: PickleGlobal[];
	/** Set when the stream is not a (sequence of) valid pickle(s): the first rule broken. */
	malformed?: string;
	/** Offset just after the last STOP that ended a pickle (0 if none did). */
	end: number;
	/** Pickles that ran to their STOP. */
	pickles: number;
	/** Set (instead of `malformed`) when `partial` was asked and the bytes ran out mid-pickle. */
	incomplete?: boolean;
	/**
	 * How one `pickle.load` from `start` ends, as CPython's unpickler would with the bytes in memory (or a file
	 * object it can peek into); `globals` counts the first entries of `globals` (those beyond come from later
	 * pickles or resynchronising). A load that fails before importing anything runs nothing.
	 *
	 * `file`: the same load read through a file object without peek (io.BytesIO, as torch.load reads data.pkl), set
	 * when that differs — CPython then drops the bytes left in a FRAME's buffer when an argument runs past its end,
	 * and reads on after the frame. Its globals are in `globals` too.
	 */
	firstPickle: LoadOutcome & { file?: LoadOutcome };
}

export interface AnalyzeOptions {
	policy: ScanPolicy;
	/** Prefix for finding locations, e.g. "archive/data.pkl". */
	location?: string;
	/** Opcode budget for the whole buffer. @default 10_000_000 */
	maxOps?: number;
	/** Stop after this many complete pickles (legacy torch files hold exactly five, then raw storage bytes). */
	maxPickles?: number;
	/** Where `bytes` starts in the file, so that reported offsets are file offsets. @default 0 */
	baseOffset?: number;
	/** Offset in `bytes` to start at. @default 0 */
	start?: number;
	/**
	 * The buffer is a prefix of a longer stream: running out of bytes mid-pickle
	 * sets `incomplete` rather than `malformed`, so the caller can read more and retry.
	 */
	partial?: boolean;
	/** Add the `pickle-forbidden` finding when the policy refuses pickles. @default true */
	forbiddenFinding?: boolean;
	/**
	 * After a parse error, also analyse later PROTO starts (a scanner's caution for files that are pickles). Off for
	 * "what would pickle.load reach from byte 0" of any file: the loader stops at the error. @default true
	 */
	resync?: boolean;
	/**
	 * With `partial`: the length of the whole stream from `bytes[0]`. An argument that runs past it is the loader's
	 * "truncated" error at once, instead of a request for more bytes (a raw file whose first bytes read as a huge
	 * BINBYTES8 need not be read whole to know pickle.load fails on it).
	 */
	streamSize?: number;
	/**
	 * The loader is a plain `pickle.Unpickler` (pickle.load, joblib, numpy's fallback, torch's first legacy pickle):
	 * no persistent_load, so PERSID/BINPERSID raise at once; and copyreg's extension registry as a fresh interpreter
	 * has it (empty), so EXT1/2/4 raise "unregistered extension code". @default false (a torch main pickle has both)
	 */
	plainLoader?: boolean;
	/**
	 * copyreg's extension registry is empty (a fresh interpreter's) even though the loader has a persistent_load.
	 * @default plainLoader
	 */
	emptyExtensionRegistry?: boolean;
	/**
	 * Which unpickler's checks end a load. "any" (the scanners'): a load ends only where every loader a user may run
	 * fails — CPython's C unpickler, the pure-Python `pickle._Unpickler` joblib uses (BUILD skips a falsy state,
	 * `func(*args)` takes any iterable, float()/int() parse what C does not, a FRAME may be shorter than it says, the
	 * memo is a dict) and every encoding (ASCII, torch's UTF-8, numpy's latin1) — so the analysis never stops before
	 * a loader that goes on. "c": exactly CPython's C unpickler with the default ASCII encoding (the differential
	 * tests' oracle). @default "any"
	 */
	unpickler?: "any" | "c";
}

export const DEFAULT_MAX_OPS = 10_000_000;
const MAX_STACK = 1_000_000;
const MAX_MARK_DEPTH = 100_000;
const MAX_MEMO = 1_000_000;
const MAX_FINDINGS = 200;
/** Strings longer than this are never module or attribute names: they are tracked as "some string". */
const MAX_NAME_BYTES = 64 * 1024;
const MAX_RESYNC = 64;
/** Memo keys below this live in an array (torch numbers them 0, 1, 2, …); others in a Map. */
const MEMO_DENSE = 1 << 20;
/**
 * A memo index at or above which CPython grows its memo array (2 × index pointers) past 1 GiB: whether that
 * allocation succeeds depends on the machine, so going on is an assumption; from MEMO_NO_MACHINE on (2 × index × 8
 * bytes = 1 TiB, written through at once) no machine does.
 */
const MEMO_BIG = 2 ** 26;
const MEMO_NO_MACHINE = 2 ** 36;

/**
 * Symbolic values, as far as the unpickler's checks see them. Mutable containers are objects shared between the
 * stack and the memo (as CPython's are), so APPEND through one reference is seen through the other.
 */
type Item =
	/** str with its text (`undefined`: longer than MAX_NAME_BYTES). */
	| { readonly k: "str"; readonly v: string | undefined }
	/** str from a length-prefixed argument (already validated), decoded only if STACK_GLOBAL takes it: bytes [s, e). */
	| { readonly k: "bstr"; readonly s: number; readonly e: number; readonly utf8: boolean }
	/** A global, or what calling, building or persistent_load gave: unknown (see the file comment). */
	| { readonly k: "any"; readonly g?: PickleGlobal }
	/** int or bool (±Infinity beyond 2^53: never an index nor a byte). */
	| { readonly k: "int"; readonly v: number }
	| { readonly k: "none" | "float" | "bytes" | "view" | "set" | "frozenset" }
	| { readonly k: "list" | "bytearray"; len: number }
	| { readonly k: "dict"; full: boolean; nonStrKey: boolean; anyKey: boolean }
	/**
	 * A tuple: whether it hashes, and for a pair whose first item is None or unknown (the one BUILD state a builtin
	 * value accepts, with an empty dict of slots) its items. Other tuples are shared: nothing else about them matters.
	 */
	| { readonly k: "tuple"; readonly hashable: boolean; readonly pair?: readonly [Item, Item] };

const NONE: Item = { k: "none" };
const FLOAT: Item = { k: "float" };
const BYTES: Item = { k: "bytes" };
const VIEW: Item = { k: "view" };
const SET: Item = { k: "set" };
const FROZENSET: Item = { k: "frozenset" };
const ANY: Item = { k: "any" };
const TUPLE: Item = { k: "tuple", hashable: true };
const UNHASHABLE_TUPLE: Item = { k: "tuple", hashable: false };
const LONG_STR: Item = { k: "str", v: undefined };
/** Ints 0 … 65535, shared (made when first needed). */
const SMALL_INTS: Item[] = [];
function intItem(v: number): Item {
	if (!(v >= 0 && v < 65536 && Number.isInteger(v))) return { k: "int", v };
	let it = SMALL_INTS[v];
	if (it === undefined) {
		it = { k: "int", v };
		SMALL_INTS[v] = it;
	}
	return it;
}
const bigToNumber = (x: bigint): number =>
	x > BigInt(Number.MAX_SAFE_INTEGER)
		? Number.POSITIVE_INFINITY
		: x < BigInt(-Number.MAX_SAFE_INTEGER)
			? Number.NEGATIVE_INFINITY
			: Number(x);

/** hash() succeeds (a global is hashable to the stand-in; a real unhashable one only fails the load sooner). */
function hashable(it: Item): boolean {
	switch (it.k) {
		case "list":
		case "dict":
		case "set":
		case "bytearray":
			return false;
		case "tuple":
			return it.hashable;
		default:
			return true;
	}
}

/** The tuple of `items[from…]`. */
function tupleOf(items: readonly Item[], from: number): Item {
	let h = true;
	for (let i = from; i < items.length; i++) if (!hashable(items[i] as Item)) h = false;
	const first = items[from];
	if (items.length - from === 2 && first !== undefined && (first.k === "none" || first.k === "any"))
		return { k: "tuple", hashable: h, pair: [first, items[from + 1] as Item] };
	return h ? TUPLE : UNHASHABLE_TUPLE;
}

/** Every opcode CPython's unpickler knows (pickletools), by byte. */
const KNOWN_OPCODES = new Set(
	Array.from("(.0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}])GBC", (c) => c.charCodeAt(0)).concat([
		0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92,
		0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
	]),
);

/** Names under which files are commonly unpickled (torch.save, joblib, pickle.dump, legacy checkpoints). */
const PICKLE_NAMES = /\.(pkl|pickle|pt|pth|bin|ckpt|joblib|dat|data|model|mar|tar)$/i;

/**
 * Whether `pickle.load` may be what opens this file: named like a pickle and starting with an opcode (it runs from
 * byte 0). A pickle-named file whose first byte is not an opcode (raw weights, ONNX external data) cannot be
 * unpickled.
 */
export function mayBeUnpickled(head: Buffer, name: string, size: number): boolean {
	return PICKLE_NAMES.test(name) && size > 0 && isPickleOpcode(head[0]);
}

/** True if `b` is an opcode CPython's unpickler accepts. */
/**
 * First opcodes at which a plain Unpickler (no persistent_load, no extension registry) fails at once: PERSID,
 * BINPERSID, EXT1/2/4 — every zip ("PK…") among them. Nothing before them runs, so nothing need be read.
 */
export const PLAIN_FAILS_FIRST: ReadonlySet<number> = new Set([0x50, 0x51, 0x82, 0x83, 0x84]);

export function isPickleOpcode(b: number | undefined): boolean {
	return b !== undefined && KNOWN_OPCODES.has(b);
}

/** A pickle start as torch.save and pickle.dump (protocol 2+) write it. */
export function startsWithProto(head: Buffer, at = 0): boolean {
	return head[at] === 0x80 && (head[at + 1] ?? 99) <= 5;
}

class Stop extends Error {
	constructor(
		readonly kind: "eof" | "error" | "budget",
		message: string,
		/** Offset (in the buffer) of the opcode that failed. */
		readonly at?: number,
	) {
		super(message);
	}
}

// ------------------------------------------------------------------ argument decoding, as CPython does it

/**
 * `PyBytes_DecodeEscape` (the STRING opcode's quoted argument), as latin-1 text; `undefined` where it raises (a
 * trailing backslash, a \x without two hex digits). Unknown escapes stay as they are (a DeprecationWarning only).
 */
function escapeDecode(s: Buffer): string | undefined {
	let out = "";
	for (let i = 0; i < s.length; i++) {
		const c = s[i] as number;
		if (c !== 0x5c) {
			out += String.fromCharCode(c);
			continue;
		}
		if (i + 1 >= s.length) return undefined; // "Trailing \ in string"
		const n = s[++i] as number;
		const ch = String.fromCharCode(n);
		const simple = STRING_ESCAPES;
		if (ch in simple) out += simple[ch];
		else if (n >= 0x30 && n <= 0x37) {
			let v = n - 0x30;
			for (let k = 0; k < 2 && i + 1 < s.length && (s[i + 1] as number) >= 0x30 && (s[i + 1] as number) <= 0x37; k++)
				v = v * 8 + ((s[++i] as number) - 0x30);
			out += String.fromCharCode(v & 0xff);
		} else if (ch === "x") {
			const hex = s.toString("latin1", i + 1, i + 3);
			if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined; // "invalid \x escape"
			out += String.fromCharCode(Number.parseInt(hex, 16));
			i += 2;
		} else out += `\\${ch}`;
	}
	return out;
}

/**
 * raw-unicode-escape (the UNICODE opcode): only \uXXXX and \UXXXXXXXX after an odd run of backslashes; other bytes
 * are latin-1. `undefined` where CPython raises (a truncated escape, beyond U+10FFFF).
 */
function rawUnicodeEscape(s: Buffer): string | undefined {
	const t = s.toString("latin1");
	let out = "";
	for (let i = 0; i < t.length; ) {
		if (t[i] !== "\\") {
			out += t[i++];
			continue;
		}
		let j = i;
		while (t[j] === "\\") j++;
		const run = j - i;
		const u = t[j];
		if (run % 2 === 1 && (u === "u" || u === "U")) {
			const w = u === "u" ? 4 : 8;
			const hex = t.slice(j + 1, j + 1 + w);
			if (hex.length !== w || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
			const cp = Number.parseInt(hex, 16);
			if (cp > 0x10ffff) return undefined;
			out += "\\".repeat(run - 1) + String.fromCodePoint(cp);
			i = j + 1 + w;
		} else {
			out += "\\".repeat(run);
			i = j;
		}
	}
	return out;
}

/** UTF-8 with "surrogatepass" (BINUNICODE): encoded surrogates are accepted; `undefined` if invalid. */
function utf8Surrogatepass(b: Buffer, s: number, e: number): string | undefined {
	const sub = b.subarray(s, e);
	if (isUtf8(sub)) return sub.toString("utf8");
	let out = "";
	for (let i = s; i < e; ) {
		const c = b[i] as number;
		if (c < 0x80) {
			out += String.fromCharCode(c);
			i++;
			continue;
		}
		let n: number;
		let cp: number;
		let min: number;
		if (c >= 0xc2 && c <= 0xdf) [n, cp, min] = [1, c & 0x1f, 0x80];
		else if (c >= 0xe0 && c <= 0xef) [n, cp, min] = [2, c & 0x0f, 0x800];
		else if (c >= 0xf0 && c <= 0xf4) [n, cp, min] = [3, c & 0x07, 0x10000];
		else return undefined;
		if (i + n >= e + 1) return undefined;
		for (let j = 1; j <= n; j++) {
			const d = b[i + j] as number;
			if ((d & 0xc0) !== 0x80) return undefined;
			cp = (cp << 6) | (d & 0x3f);
		}
		if (cp < min || cp > 0x10ffff) return undefined;
		out += String.fromCodePoint(cp);
		i += n + 1;
	}
	return out;
}

function isAscii(b: Buffer): boolean {
	for (let i = 0; i < b.length; i++) if ((b[i] as number) >= 0x80) return false;
	return true;
}

/** A line argument as the C functions see it: a C string, cut at its first NUL. */
function cString(b: Buffer): string {
	const z = b.indexOf(0);
	return b.toString("latin1", 0, z < 0 ? b.length : z);
}

const PY_INT_BASE0 =
	/^[ \t\n\v\f\r]*([+-]?)(?:0[xX]_?([0-9a-fA-F](?:_?[0-9a-fA-F])*)|0[oO]_?([0-7](?:_?[0-7])*)|0[bB]_?([01](?:_?[01])*)|(0(?:_?0)*|[1-9](?:_?[0-9])*))[ \t\n\v\f\r]*$/;
const PY_INT_BASE10 = /^[ \t\n\v\f\r]*([+-]?)([0-9](?:_?[0-9])*)[ \t\n\v\f\r]*$/;

/** `PyLong_FromString(s, NULL, base)` for base 0 or 10: the value, or undefined where it raises. */
function pyInt(s: string, base: 0 | 10): bigint | undefined {
	const m = (base === 0 ? PY_INT_BASE0 : PY_INT_BASE10).exec(s);
	if (!m) return undefined;
	const [, sign, ...alts] = m;
	const [hex, oct, bin, dec] = base === 0 ? alts : [undefined, undefined, undefined, alts[0]];
	const digits = (hex ?? oct ?? bin ?? dec ?? "0").replace(/_/g, "");
	const v = BigInt(hex ? `0x${digits}` : oct ? `0o${digits}` : bin ? `0b${digits}` : digits);
	return sign === "-" ? -v : v;
}

/**
 * INT's argument: glibc `strtol(s, &end, 0)` when it reads the whole line without overflow (so "010" is 8, "I\0" is
 * 0), else `PyLong_FromString(s, NULL, 0)`.
 */
function parseIntOpcode(s: string): bigint | undefined {
	let i = 0;
	while (i < s.length && " \t\n\v\f\r".includes(s[i] as string)) i++;
	const neg = s[i] === "-";
	if (s[i] === "+" || s[i] === "-") i++;
	let radix = 10;
	if (s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X") && /[0-9a-fA-F]/.test(s[i + 2] ?? "")) {
		radix = 16;
		i += 2;
	} else if (s[i] === "0") radix = 8;
	const digit = radix === 16 ? /[0-9a-fA-F]/ : radix === 8 ? /[0-7]/ : /[0-9]/;
	const from = i;
	while (i < s.length && digit.test(s[i] as string)) i++;
	if (i === from) {
		if (s === "") return 0n; // no digits: end = s, which is the NUL
	} else if (i === s.length) {
		const d = s.slice(from, i);
		const v = BigInt(radix === 16 ? `0x${d}` : radix === 8 ? `0o${d}` : d) * (neg ? -1n : 1n);
		if (v >= -(2n ** 63n) && v < 2n ** 63n) return v;
	}
	return pyInt(s, 0);
}

const PY_FLOAT =
	/^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$/;

/** FLOAT's argument: `PyOS_string_to_double` reading the whole C string, no overflow. */
function floatOk(s: string): boolean {
	if (!PY_FLOAT.test(s)) return false;
	return /[iInN]/.test(s) || Number.isFinite(Number(s));
}

/** A little-endian two's-complement integer of n bytes (LONG1/LONG4), ±Infinity beyond 2^53. */
function leSigned(b: Buffer, s: number, n: number): number {
	if (n === 0) return 0;
	let hi = n;
	const fill = (b[s + n - 1] as number) & 0x80 ? 0xff : 0;
	// sign-extension bytes at the top change nothing
	while (hi > 1 && b[s + hi - 1] === fill && ((b[s + hi - 2] as number) & 0x80) === (fill & 0x80)) hi--;
	if (hi > 8) return fill ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
	let v = 0n;
	for (let i = hi - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[s + i] as number);
	if (fill) v -= 1n << BigInt(8 * hi);
	return bigToNumber(v);
}

// ------------------------------------------------------------------ the unpickler

/** One load's record. */
interface Run {
	/** find_class calls so far. */
	imports: number;
	assumed?: LoadOutcome["assumed"];
	/** A FRAME's buffer had bytes left when an argument ran past its end (or at STOP): memory and file readings differ. */
	diverged: boolean;
}

interface Ctx {
	buf: Buffer;
	policy: ScanPolicy;
	location: string | undefined;
	base: number;
	opsLeft: number;
	findings: Finding[];
	globals: PickleGlobal[];
	/** module + "\n" + name of `globals`, to add each only once in a second reading. */
	globalKeys: Set<string>;
	/** A second reading (file mode) adds only globals not seen yet. */
	dedupe: boolean;
	seen: Set<string>;
	findingsDropped: number;
	/** bytes in the whole stream (AnalyzeOptions.streamSize) */
	streamSize: number;
	persistentLoad: boolean;
	emptyRegistry: boolean;
	/** AnalyzeOptions.unpickler === "any": go on wherever some loader does */
	lenient: boolean;
	run: Run;
}

function where(ctx: Ctx, offset: number): string {
	const op = `opcode 0x${(ctx.base + offset).toString(16)}`;
	return ctx.location ? `${ctx.location} @ ${op}` : op;
}

function addFinding(ctx: Ctx, key: string, f: Finding): void {
	if (ctx.seen.has(key)) return;
	ctx.seen.add(key);
	if (ctx.findings.length >= MAX_FINDINGS) {
		ctx.findingsDropped++;
		return;
	}
	ctx.findings.push(f);
}

/** Judges one imported global against the policy. */
function judgeGlobal(ctx: Ctx, g: PickleGlobal, opname: string): void {
	ctx.run.imports++;
	const key = `${g.module}\n${g.name}`;
	if (ctx.globals.length < 10_000 && !(ctx.dedupe && ctx.globalKeys.has(key))) {
		ctx.globals.push({ ...g, offset: ctx.base + g.offset });
		ctx.globalKeys.add(key);
	}
	const desc = describeGlobal(g);
	const why = dangerReason(g);
	if (why !== undefined) {
		addFinding(ctx, `dangerous:${desc}`, {
			id: "dangerous-global",
			severity: "critical",
			message: `${opname} imports ${desc}: ${why}`,
			location: where(ctx, g.offset),
		});
	} else if (ctx.policy.allowPickle && !isAllowed(g)) {
		addFinding(ctx, `nonallowed:${desc}`, {
			id: "non-allowlisted-global",
			severity: "high",
			message: `${opname} imports ${desc}, which is not on the allow-list of benign checkpoint globals`,
			location: where(ctx, g.offset),
		});
	}
}

/** What an operation on values does in CPython: succeeds, fails, or succeeds only if a global is what it checks for. */
const OK = 0;
const ASSUME = 1;
const FAIL = 2;
type Verdict = typeof OK | typeof ASSUME | typeof FAIL;
const worst = (a: Verdict, b: Verdict): Verdict => (a > b ? a : b);

/** `seq[key]` for a list or bytearray of `len` items: an int index in range. */
const indexVerdict = (key: Item, len: number): Verdict =>
	key.k === "any" ? ASSUME : key.k === "int" && key.v >= -len && key.v < len ? OK : FAIL;
/** A bytearray's item: an int in range(256). */
const byteVerdict = (v: Item): Verdict => (v.k === "any" ? ASSUME : v.k === "int" && v.v >= 0 && v.v < 256 ? OK : FAIL);

/** APPEND/APPENDS: a list is extended; otherwise its `extend` (bytearray: bytes only) or `append`; nothing else has them. */
function appendVerdict(target: Item, items: readonly Item[], from: number): Verdict {
	switch (target.k) {
		case "any":
			return OK;
		case "list":
			target.len += items.length - from;
			return OK;
		case "bytearray": {
			let v: Verdict = OK;
			for (let i = from; i < items.length; i++) v = worst(v, byteVerdict(items[i] as Item));
			target.len += items.length - from;
			return v;
		}
		default:
			return FAIL;
	}
}

/** SETITEM/SETITEMS: `target[key] = value` for each pair of `kv` from `from` on. */
function setItemsVerdict(target: Item, kv: readonly Item[], from: number): Verdict {
	let v: Verdict = OK;
	switch (target.k) {
		case "any":
			return OK;
		case "dict":
			for (let i = from; i < kv.length; i += 2) {
				const key = kv[i] as Item;
				if (!hashable(key)) return FAIL;
				if (key.k === "any") target.anyKey = true;
				else if (key.k !== "str" && key.k !== "bstr") target.nonStrKey = true;
			}
			target.full = true;
			return OK;
		case "list":
			for (let i = from; i < kv.length; i += 2) v = worst(v, indexVerdict(kv[i] as Item, target.len));
			return v;
		case "bytearray":
			for (let i = from; i < kv.length; i += 2)
				v = worst(v, worst(indexVerdict(kv[i] as Item, target.len), byteVerdict(kv[i + 1] as Item)));
			return v;
		default:
			return FAIL;
	}
}

/**
 * BUILD on a value that is not a global's (no `__setstate__`): CPython's default sets `__dict__` and slots, which no
 * builtin value has — only a state of None, or (None, {}), does nothing and succeeds.
 */
function buildVerdict(state: Item): Verdict {
	const isNone = (x: Item): Verdict => (x.k === "none" ? OK : x.k === "any" ? ASSUME : FAIL);
	if (state.k === "tuple") {
		// a pair whose first item is neither None nor unknown fails as any other tuple does
		if (state.pair === undefined) return FAIL;
		const [s, slots] = state.pair;
		const slotsV: Verdict = slots.k === "dict" ? (slots.full ? FAIL : OK) : slots.k === "any" ? ASSUME : FAIL;
		return worst(isNone(s), slotsV);
	}
	return isNone(state);
}

/**
 * Runs one load from `start` to its STOP, as CPython's C unpickler reads it from memory (`file` false) or through a
 * file object without peek (`file` true). Returns where the next load starts; throws Stop for a truncated stream, a
 * rule CPython would reject, or an exhausted budget. `ctx.run` records the load.
 */
function runOne(ctx: Ctx, start: number, file: boolean): number {
	const buf = ctx.buf;
	const len = buf.length;
	const run: Run = { imports: 0, diverged: false };
	ctx.run = run;
	let pos = start;
	/** The end of the FRAME buffer being read; no frame when not beyond `pos`. */
	let fe = -1;
	/** Reads that end by here are plain (the hot opcodes' inline path): the frame's end, or the buffer's. */
	let lim = len;
	let stack: Item[] = [];
	const marks: Item[][] = [];
	// The memo: dense keys in an array, any others in a Map; `memoSize` counts both (MEMOIZE's key).
	const memoArr: Item[] = [];
	let memoMap: Map<number, Item> | undefined;
	let memoSize = 0;
	let memoOverflow = false;
	/** The size CPython's memo array has grown to. */
	let memoCap = 32;
	const memoLookup = (idx: number): Item | undefined =>
		idx >= 0 && idx < MEMO_DENSE ? memoArr[idx] : memoMap?.get(idx);

	const need = (n: number, what: string): void => {
		if (n > len - pos)
			throw new Stop(
				n > ctx.streamSize - pos ? "error" : "eof",
				`truncated: ${what} at offset 0x${(ctx.base + pos).toString(16)}`,
			);
	};
	const fail = (msg: string, at: number): never => {
		throw new Stop("error", `${msg} at offset 0x${(ctx.base + at).toString(16)}`, at);
	};
	const assume = (why: "global" | "memory" | "buffers", at: number): void => {
		run.assumed ??= { offset: ctx.base + at, globals: run.imports, why };
	};
	/** Applies a verdict: FAIL ends the load, ASSUME goes on (recorded). */
	const judge = (v: Verdict, msg: string, at: number): void => {
		if (v === FAIL) fail(msg, at);
		if (v === ASSUME) assume("global", at);
	};
	/**
	 * An argument read runs past the frame buffer while bytes are left in it: CPython reading a file object reads
	 * the whole argument from the file, after the frame (the bytes left are dropped); from memory it reads on.
	 */
	const straddle = (): void => {
		if (file) pos = fe;
		else run.diverged = true;
		fe = -1;
	};
	/** `_Unpickler_Read(n)`: n bytes, at the offset returned. */
	const take = (n: number, what: string): number => {
		if (fe > pos) {
			if (n > fe - pos) straddle();
		} else lim = len;
		need(n, what);
		const s = pos;
		pos += n;
		return s;
	};
	const u8 = (): number => buf[take(1, "argument")] as number;
	/** The hot opcodes' read of a fixed-size argument: inline while no frame buffer ends before it. */
	const arg = (n: number, what: string): number => {
		if (lim - pos < n) return take(n, what);
		pos += n;
		return pos - n;
	};
	// Little-endian integers from the bytes directly (`need` has checked the bounds): Buffer's
	// readUInt32LE & co. validate again and run cold in the interpreter on a CLI's only scan.
	const le32 = (at: number): number =>
		((buf[at] as number) |
			((buf[at + 1] as number) << 8) |
			((buf[at + 2] as number) << 16) |
			((buf[at + 3] as number) << 24)) >>>
		0;
	const u16 = (): number => {
		const s = take(2, "argument");
		return (buf[s] as number) | ((buf[s + 1] as number) << 8);
	};
	const u32 = (): number => le32(take(4, "argument"));
	const s32 = (): number => le32(take(4, "argument")) | 0;
	/** An 8-byte length (a double beyond 2^53: past any buffer either way); beyond PY_SSIZE_T_MAX, OverflowError. */
	const u64 = (at: number): number => {
		const s = take(8, "argument");
		const hi = le32(s + 4);
		if (hi >= 0x8000_0000) fail("8-byte length beyond PY_SSIZE_T_MAX", at);
		return hi * 0x1_0000_0000 + le32(s);
	};
	/** `_Unpickler_Readline`: a newline-terminated argument, without the newline. */
	const line = (what: string): Buffer => {
		if (fe > pos) {
			const nl = buf.indexOf(0x0a, pos);
			if (nl >= 0 && nl < fe) {
				const b = buf.subarray(pos, nl);
				pos = nl + 1;
				return b;
			}
			straddle();
		}
		const nl = buf.indexOf(0x0a, pos);
		if (nl < 0)
			throw new Stop("eof", `truncated: ${what} without newline at offset 0x${(ctx.base + pos).toString(16)}`);
		const b = buf.subarray(pos, nl);
		pos = nl + 1;
		return b;
	};
	/** A line argument that must hold more than its newline (CPython: "pickle data was truncated"). */
	const line2 = (what: string, at: number): Buffer => {
		const b = line(what);
		if (b.length === 0) fail(`empty ${what}`, at);
		return b;
	};
	/** `_Unpickler_ReadInto(n)` (BINBYTES, BYTEARRAY8): reads on from the file after a frame, dropping nothing. */
	const skipInto = (n: number, what: string): void => {
		need(n, what);
		pos += n;
	};
	/** A length-prefixed str argument: ASCII (BINSTRING, under the default encoding) or UTF-8 with surrogates. */
	const binStr = (n: number, what: string, utf8: boolean, at: number): Item => {
		const s = take(n, what);
		let ascii = true;
		for (let i = s; i < pos; i++)
			if ((buf[i] as number) >= 0x80) {
				ascii = false;
				break;
			}
		const ok = ascii || (utf8 && (isUtf8(buf.subarray(s, pos)) || utf8Surrogatepass(buf, s, pos) !== undefined));
		// a byte string (BINSTRING) decodes under numpy's latin1 whatever it holds; a str (BINUNICODE) must be UTF-8
		if (!ok && (utf8 || !ctx.lenient)) fail(`${what} argument is not ${utf8 ? "UTF-8" : "ASCII"}`, at);
		return n > MAX_NAME_BYTES ? LONG_STR : { k: "bstr", s, e: pos, utf8 };
	};
	/** The text of a str item (undefined: too long to have kept). */
	const textOf = (it: Item): string | undefined =>
		it.k === "str"
			? it.v
			: it.k === "bstr"
				? it.utf8
					? utf8Surrogatepass(buf, it.s, it.e)
					: buf.toString("latin1", it.s, it.e)
				: undefined;
	const push = (it: Item): void => {
		if (stack.length >= MAX_STACK) throw new Stop("budget", `pickle stack deeper than ${MAX_STACK}`);
		stack[stack.length] = it;
	};
	const pop = (at: number): Item => {
		const it = stack.pop();
		if (it === undefined) return fail("stack underflow", at);
		return it;
	};
	const top = (at: number): Item => {
		const it = stack[stack.length - 1];
		if (it === undefined) return fail("stack underflow", at);
		return it;
	};
	/** CPython's marker(): the items above the top MARK (the stack below it becomes current). */
	const popMark = (at: number): Item[] => {
		const items = stack;
		const prev = marks.pop();
		if (prev === undefined) return fail("MARK not found", at);
		stack = prev;
		return items;
	};
	/** Fails unless the current stack holds `n` items. */
	const needItems = (n: number, at: number): void => {
		if (stack.length < n) fail("stack underflow", at);
	};
	const memoGet = (idx: number, at: number): Item => {
		const it = memoLookup(idx);
		if (it !== undefined) return it;
		// Once entries were dropped for the memo cap, a miss is "something we did not keep", not an error.
		if (memoOverflow) return ANY;
		return fail(`memo key ${idx} not found`, at);
	};
	const memoPut = (idx: number, at: number): void => {
		const it = top(at);
		if (idx >= memoCap) {
			if (idx >= MEMO_NO_MACHINE && !ctx.lenient) fail(`memo key ${idx}: no machine has its memo array`, at);
			if (idx >= MEMO_BIG) assume("memory", at);
			memoCap = idx * 2;
		}
		const dense = idx < MEMO_DENSE;
		const fresh = (dense ? memoArr[idx] : memoLookup(idx)) === undefined;
		if (fresh && memoSize >= MAX_MEMO) {
			memoOverflow = true;
			return;
		}
		if (fresh) memoSize++;
		if (dense) memoArr[idx] = it;
		else {
			memoMap ??= new Map();
			memoMap.set(idx, it);
		}
	};
	/** PUT/GET's argument: `PyLong_FromString(s, NULL, 10)` as a Py_ssize_t. */
	const textIndex = (b: Buffer, at: number): number => {
		const v = pyInt(cString(b), 10);
		if (v === undefined || v >= 2n ** 63n || v < -(2n ** 63n)) return fail("memo index is not an integer", at);
		return bigToNumber(v);
	};
	const call = (callee: Item, opname: string, at: number): void => {
		if (callee.k !== "any") {
			fail(`${opname} calls a ${callee.k}, which is not callable`, at);
			return;
		}
		// Normal pickles always call a global (directly or via the memo); calling the result of
		// another call or an unresolved value is how gadget chains work, so with --allow-pickle it is flagged.
		if (ctx.policy.allowPickle && callee.g === undefined) {
			addFinding(ctx, `indirect:${at}`, {
				id: "indirect-call",
				severity: "high",
				message: `${opname} calls a value that is not an imported global (a gadget chain)`,
				location: where(ctx, at),
			});
		}
	};
	/** An argument tuple (REDUCE, NEWOBJ). */
	const tupleVerdict = (x: Item): Verdict => (x.k === "tuple" ? OK : x.k === "any" ? ASSUME : FAIL);
	const imported = (module: string, name: string, at: number, opname: string): Item => {
		const g: PickleGlobal = { module, name, offset: at };
		judgeGlobal(ctx, g, opname);
		return { k: "any", g };
	};

	// The opcode budget is counted in a local (written back however the loop ends).
	let ops = ctx.opsLeft;
	try {
		for (;;) {
			if (ops-- <= 0) throw new Stop("budget", "opcode budget exhausted");
			const at = pos;
			// The hot path calls no helper unless a check fails (they throw): cold, every call counts.
			if (pos >= len) need(1, "opcode (no STOP)");
			const op = buf[pos++] as number;
			switch (op) {
				case 0x80: {
					// PROTO
					const p = u8();
					if (p > 5) fail(`unsupported pickle protocol ${p}`, at);
					break;
				}
				case 0x95: {
					// FRAME: CPython reads the frame into its buffer (from memory: just checks the bytes are there)
					const n = u64(at);
					if (fe > pos && n <= fe - pos) break; // already in the buffer
					if (fe > pos) straddle();
					// pickle._Unpickler buffers what is left of a FRAME longer than the stream, and reads on
					need(ctx.lenient ? Math.min(n, (Number.isFinite(ctx.streamSize) ? ctx.streamSize : len) - pos) : n, "FRAME");
					fe = pos + n;
					lim = Math.min(fe, len); // a lenient FRAME may say more than there is
					break;
				}
				case 0x2e: {
					// STOP
					pop(at);
					if (fe > pos) {
						// a file object has read the frame to its end: the next load starts there
						if (file) return fe;
						run.diverged = true;
					}
					return pos;
				}
				case 0x28: // MARK
					if (marks.length >= MAX_MARK_DEPTH) throw new Stop("budget", `MARK nesting deeper than ${MAX_MARK_DEPTH}`);
					marks.push(stack);
					stack = [];
					break;
				case 0x30: // POP (pops a MARK when the current frame is empty, like CPython)
					if (stack.length > 0) stack.pop();
					else popMark(at);
					break;
				case 0x31: // POP_MARK
					popMark(at);
					break;
				case 0x32: // DUP
					push(top(at));
					break;
				// constants and numbers
				case 0x4e: // NONE
					push(NONE);
					break;
				case 0x88: // NEWTRUE
					push(intItem(1));
					break;
				case 0x89: // NEWFALSE
					push(intItem(0));
					break;
				case 0x29: // EMPTY_TUPLE
					push(TUPLE);
					break;
				case 0x5d: // EMPTY_LIST
					push({ k: "list", len: 0 });
					break;
				case 0x7d: // EMPTY_DICT
					push({ k: "dict", full: false, nonStrKey: false, anyKey: false });
					break;
				case 0x8f: // EMPTY_SET
					push(SET);
					break;
				case 0x97: // NEXT_BUFFER: loaders give no out-of-band buffers (CPython raises); one that does goes on
					assume("buffers", at);
					push(ANY);
					break;
				case 0x49: {
					// INT
					const v = parseIntOpcode(cString(line2("INT", at)));
					if (v !== undefined) push(intItem(bigToNumber(v)));
					else if (ctx.lenient)
						push(FLOAT); // int(data, 0) in pickle._Unpickler: a number of some value
					else fail("INT argument is not an integer", at);
					break;
				}
				case 0x4c: {
					// LONG: an "L" before the newline is dropped
					const b = line2("LONG", at);
					const v = pyInt(cString(b[b.length - 1] === 0x4c ? b.subarray(0, -1) : b), 0);
					if (v !== undefined) push(intItem(bigToNumber(v)));
					else if (ctx.lenient) push(FLOAT);
					else fail("LONG argument is not an integer", at);
					break;
				}
				case 0x46: // FLOAT
					// float() (pickle._Unpickler) takes underscores and spaces PyOS_string_to_double does not
					if (!floatOk(cString(line2("FLOAT", at))) && !ctx.lenient) fail("FLOAT argument is not a float", at);
					push(FLOAT);
					break;
				case 0x4a: {
					// BININT
					const s = arg(4, "BININT");
					push(intItem(le32(s) | 0));
					break;
				}
				case 0x4b: {
					// BININT1
					const s = arg(1, "BININT1");
					push(intItem(buf[s] as number));
					break;
				}
				case 0x4d: {
					// BININT2
					const s = arg(2, "BININT2");
					push(intItem((buf[s] as number) | ((buf[s + 1] as number) << 8)));
					break;
				}
				case 0x47: // BINFLOAT
					arg(8, "BINFLOAT");
					push(FLOAT);
					break;
				case 0x8a: {
					// LONG1
					const n = u8();
					push(intItem(leSigned(buf, take(n, "LONG1"), n)));
					break;
				}
				case 0x8b: {
					// LONG4
					const n = s32();
					if (n < 0) fail("LONG4 with negative length", at);
					push(intItem(leSigned(buf, take(n, "LONG4"), n)));
					break;
				}
				// strings: the only values STACK_GLOBAL accepts
				case 0x53: {
					// STRING: quoted, escape-decoded, then decoded as ASCII (the Unpickler's default encoding)
					const b = line("STRING");
					const q = b[0];
					if (b.length < 2 || (q !== 0x22 && q !== 0x27) || b[b.length - 1] !== q)
						fail("STRING argument is not quoted", at);
					const v = escapeDecode(b.subarray(1, -1));
					if (v === undefined) fail("STRING argument has an invalid escape", at);
					else if (!ctx.lenient && !isAscii(Buffer.from(v, "latin1"))) fail("STRING argument is not ASCII", at);
					else push(v.length > MAX_NAME_BYTES ? LONG_STR : { k: "str", v });
					break;
				}
				case 0x54: {
					// BINSTRING (CPython reads the length unsigned; one this large is past any buffer)
					const n = s32();
					if (n < 0) fail("BINSTRING with negative length", at);
					push(binStr(n, "BINSTRING", false, at));
					break;
				}
				case 0x55: // SHORT_BINSTRING
					push(binStr(u8(), "SHORT_BINSTRING", false, at));
					break;
				case 0x56: {
					// UNICODE
					const v = rawUnicodeEscape(line("UNICODE"));
					if (v === undefined) fail("UNICODE argument has an invalid escape", at);
					else push(v.length > MAX_NAME_BYTES ? LONG_STR : { k: "str", v });
					break;
				}
				case 0x58: // BINUNICODE
					push(binStr(le32(arg(4, "BINUNICODE")), "BINUNICODE", true, at));
					break;
				case 0x8c: // SHORT_BINUNICODE
					push(binStr(buf[arg(1, "SHORT_BINUNICODE")] as number, "SHORT_BINUNICODE", true, at));
					break;
				case 0x8d: // BINUNICODE8
					push(binStr(u64(at), "BINUNICODE8", true, at));
					break;
				// bytes-like
				case 0x42: // BINBYTES
					skipInto(u32(), "BINBYTES");
					push(BYTES);
					break;
				case 0x43: // SHORT_BINBYTES
					skipInto(u8(), "SHORT_BINBYTES");
					push(BYTES);
					break;
				case 0x8e: // BINBYTES8
					skipInto(u64(at), "BINBYTES8");
					push(BYTES);
					break;
				case 0x96: {
					// BYTEARRAY8
					const n = u64(at);
					skipInto(n, "BYTEARRAY8");
					push({ k: "bytearray", len: n });
					break;
				}
				case 0x98: {
					// READONLY_BUFFER: a memoryview of the top item (bytes-like only), read-only
					const it = top(at);
					if (it.k === "bytearray") stack[stack.length - 1] = VIEW;
					else if (it.k === "any") assume("global", at);
					else if (it.k !== "bytes" && it.k !== "view") fail(`READONLY_BUFFER on a ${it.k}`, at);
					break;
				}
				// containers
				case 0x61: {
					// APPEND
					needItems(2, at);
					const v = stack.pop() as Item;
					judge(appendVerdict(top(at), [v], 0), "APPEND to a value without append", at);
					break;
				}
				case 0x65: {
					// APPENDS
					const items = popMark(at);
					const target = top(at);
					if (items.length > 0) judge(appendVerdict(target, items, 0), "APPENDS to a value without extend", at);
					break;
				}
				case 0x90: {
					// ADDITEMS
					const items = popMark(at);
					const target = top(at);
					if (items.length === 0 || target.k === "any") break;
					if (target.k !== "set") fail(`ADDITEMS to a ${target.k}`, at);
					for (const x of items) if (!hashable(x)) fail("ADDITEMS of an unhashable item", at);
					break;
				}
				case 0x73: {
					// SETITEM (pops key and value; the target stays)
					needItems(3, at);
					const n = stack.length;
					judge(setItemsVerdict(stack[n - 3] as Item, stack, n - 2), "SETITEM fails", at);
					stack.length = n - 2;
					break;
				}
				case 0x75: {
					// SETITEMS
					const items = popMark(at);
					const target = top(at);
					if (items.length === 0) break;
					if (items.length % 2 !== 0) fail("odd number of items for SETITEMS", at);
					judge(setItemsVerdict(target, items, 0), "SETITEMS fails", at);
					break;
				}
				case 0x6c: // LIST
					push({ k: "list", len: popMark(at).length });
					break;
				case 0x74: // TUPLE
					push(tupleOf(popMark(at), 0));
					break;
				case 0x64: {
					// DICT
					const items = popMark(at);
					if (items.length % 2 !== 0) fail("odd number of items for DICT", at);
					const d: Item = { k: "dict", full: false, nonStrKey: false, anyKey: false };
					if (items.length > 0) judge(setItemsVerdict(d, items, 0), "DICT with an unhashable key", at);
					push(d);
					break;
				}
				case 0x91: {
					// FROZENSET
					for (const x of popMark(at)) if (!hashable(x)) fail("FROZENSET of an unhashable item", at);
					push(FROZENSET);
					break;
				}
				case 0x85: // TUPLE1 (replaces the top item)
					needItems(1, at);
					stack[stack.length - 1] = hashable(stack[stack.length - 1] as Item) ? TUPLE : UNHASHABLE_TUPLE;
					break;
				case 0x86: // TUPLE2
				case 0x87: {
					// TUPLE3
					const n = op === 0x86 ? 2 : 3;
					needItems(n, at);
					const t = tupleOf(stack, stack.length - n);
					stack.length -= n;
					push(t);
					break;
				}
				// memo
				case 0x70: {
					// PUT
					const b = line2("PUT", at);
					top(at);
					const idx = textIndex(b, at);
					if (idx < 0) fail("negative PUT argument", at);
					memoPut(idx, at);
					break;
				}
				case 0x71: {
					// BINPUT
					const idx = buf[arg(1, "argument")] as number;
					const it = stack[stack.length - 1];
					if (it !== undefined && memoSize < MAX_MEMO) {
						if (memoArr[idx] === undefined) memoSize++;
						memoArr[idx] = it;
					} else memoPut(idx, at);
					break;
				}
				case 0x72: {
					// LONG_BINPUT
					const idx = le32(arg(4, "argument"));
					const it = stack[stack.length - 1];
					// Fast path of memoPut: a dense key while the memo has room.
					if (it !== undefined && idx < memoCap && idx < MEMO_DENSE && memoSize < MAX_MEMO) {
						if (memoArr[idx] === undefined) memoSize++;
						memoArr[idx] = it;
					} else memoPut(idx, at);
					break;
				}
				case 0x94: // MEMOIZE: the key is the memo's current length
					if (memoOverflow) top(at);
					else memoPut(memoSize, at);
					break;
				case 0x67: // GET
					push(memoGet(textIndex(line2("GET", at), at), at));
					break;
				case 0x68: {
					// BINGET
					const idx = buf[arg(1, "argument")] as number;
					push(memoArr[idx] ?? memoGet(idx, at));
					break;
				}
				case 0x6a: {
					// LONG_BINGET
					const idx = le32(arg(4, "argument"));
					push((idx < MEMO_DENSE ? memoArr[idx] : undefined) ?? memoGet(idx, at));
					break;
				}
				// imports and calls: what the analysis is for
				case 0x63: {
					// GLOBAL "module\nname\n", each UTF-8
					const m = line2("GLOBAL module", at);
					if (!isUtf8(m)) fail("GLOBAL module is not UTF-8", at);
					const n = line2("GLOBAL name", at);
					if (!isUtf8(n)) fail("GLOBAL name is not UTF-8", at);
					push(imported(m.toString("utf8"), n.toString("utf8"), at, "GLOBAL"));
					break;
				}
				case 0x93: {
					// STACK_GLOBAL: module and name come from the stack (often via the memo), both exactly str
					const name = pop(at);
					const mod = pop(at);
					const isStr = (x: Item): Verdict => (x.k === "str" || x.k === "bstr" ? OK : x.k === "any" ? ASSUME : FAIL);
					const v = worst(isStr(mod), isStr(name));
					if (v === FAIL) fail("STACK_GLOBAL requires str", at);
					const modStr = textOf(mod);
					const nameStr = textOf(name);
					if (v === OK && modStr !== undefined && nameStr !== undefined) {
						push(imported(modStr, nameStr, at, "STACK_GLOBAL"));
						break;
					}
					if (v === OK) run.imports++;
					else assume("global", at);
					addFinding(ctx, `unresolved:${at}`, {
						id: "unresolved-global",
						severity: "high",
						message: "STACK_GLOBAL imports a global whose module or name cannot be determined statically",
						location: where(ctx, at),
					});
					push(ANY);
					break;
				}
				case 0x69: {
					// INST "module\nname\n" (ASCII): import and call with the items above MARK
					popMark(at);
					const m = line2("INST module", at);
					if (!isAscii(m)) fail("INST module is not ASCII", at);
					const n = line2("INST name", at);
					if (!isAscii(n)) fail("INST name is not ASCII", at);
					imported(m.toString("latin1"), n.toString("latin1"), at, "INST");
					push(ANY);
					break;
				}
				case 0x6f: {
					// OBJ: call the first item above MARK with the rest
					const items = popMark(at);
					const cls = items[0];
					if (cls === undefined) fail("OBJ without a class", at);
					else call(cls, "OBJ", at);
					push(ANY);
					break;
				}
				case 0x52: {
					// REDUCE: pops the arguments, calls the callable below them, leaves the result
					needItems(2, at);
					const args = stack.pop() as Item;
					call(stack[stack.length - 1] as Item, "REDUCE", at);
					if (!ctx.lenient) judge(tupleVerdict(args), "REDUCE arguments are not a tuple", at); // func(*args)
					stack[stack.length - 1] = ANY;
					break;
				}
				case 0x81: {
					// NEWOBJ: cls.__new__(cls, *args) — cls must be a type (a global may be)
					needItems(2, at);
					const args = stack.pop() as Item;
					const cls = stack.pop() as Item;
					call(cls, "NEWOBJ", at);
					if (!ctx.lenient) judge(tupleVerdict(args), "NEWOBJ arguments are not a tuple", at);
					push(ANY);
					break;
				}
				case 0x92: {
					// NEWOBJ_EX: cls.__new__(cls, *args, **kwargs) — keyword names must be str
					needItems(3, at);
					const kwargs = stack.pop() as Item;
					const args = stack.pop() as Item;
					const cls = stack.pop() as Item;
					call(cls, "NEWOBJ_EX", at);
					const kw: Verdict =
						kwargs.k === "dict"
							? kwargs.nonStrKey
								? FAIL
								: kwargs.anyKey
									? ASSUME
									: OK
							: kwargs.k === "any"
								? ASSUME
								: FAIL;
					if (!ctx.lenient)
						judge(worst(tupleVerdict(args), kw), "NEWOBJ_EX arguments are not a tuple and a dict of str", at);
					push(ANY);
					break;
				}
				case 0x62: {
					// BUILD: a global's __setstate__, or CPython's default (see buildVerdict)
					needItems(2, at);
					const state = stack.pop() as Item;
					const inst = stack[stack.length - 1] as Item;
					// pickle._Unpickler skips a falsy state and slot state where the C one requires dicts
					if (inst.k !== "any" && !ctx.lenient) judge(buildVerdict(state), `BUILD on a ${inst.k}`, at);
					break;
				}
				case 0x50: {
					// PERSID: resolved by the loader's persistent_load (torch: storages); the id is ASCII
					if (!ctx.persistentLoad) fail("persistent id without a persistent_load", at);
					if (!isAscii(line("PERSID"))) fail("PERSID argument is not ASCII", at);
					push(ANY);
					break;
				}
				case 0x51: // BINPERSID (replaces the persistent id)
					if (!ctx.persistentLoad) fail("persistent id without a persistent_load", at);
					needItems(1, at);
					stack[stack.length - 1] = ANY;
					break;
				case 0x82: // EXT1
				case 0x83: // EXT2
				case 0x84: {
					// EXT4: imports whatever copyreg's extension registry maps the code to
					const code = op === 0x82 ? u8() : op === 0x83 ? u16() : s32();
					if (code <= 0) fail("EXT specifies code <= 0", at);
					if (ctx.emptyRegistry) fail(`unregistered extension code ${code}`, at);
					addFinding(ctx, `ext:${at}`, {
						id: "extension-global",
						severity: "high",
						message: `EXT opcode imports extension code ${code} from copyreg's registry, which cannot be resolved statically`,
						location: where(ctx, at),
					});
					push(ANY);
					break;
				}
				default:
					fail(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`, at);
			}
		}
	} finally {
		ctx.opsLeft = ops;
	}
}

/**
 * Analyses a buffer holding one or more pickles back to back. Never throws for
 * bad input: the first rule broken goes to `malformed`, findings from before
 * (and from any later pickle found by resynchronising on a PROTO opcode) are kept.
 */
export function analyzePickle(bytes: Buffer, options: AnalyzeOptions): PickleAnalysis {
	const ctx: Ctx = {
		buf: bytes,
		policy: options.policy,
		location: options.location,
		base: options.baseOffset ?? 0,
		opsLeft: options.maxOps ?? DEFAULT_MAX_OPS,
		findings: [],
		globals: [],
		seen: new Set(),
		findingsDropped: 0,
		streamSize: options.streamSize ?? Number.POSITIVE_INFINITY,
		persistentLoad: options.plainLoader !== true,
		emptyRegistry: options.emptyExtensionRegistry ?? options.plainLoader === true,
		lenient: options.unpickler !== "c",
		globalKeys: new Set(),
		dedupe: false,
		run: { imports: 0, diverged: false },
	};
	if (!options.policy.allowPickle && options.forbiddenFinding !== false) {
		ctx.findings.push({
			id: "pickle-forbidden",
			severity: "high",
			message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
			...(options.location ? { location: options.location } : {}),
		});
	}
	const hex = (n: number) => `0x${(ctx.base + n).toString(16)}`;
	let pos = options.start ?? 0;
	let end = pos;
	let pickles = 0;
	let malformed: string | undefined;
	let incomplete = false;
	let errorAt: number | undefined;

	const outcome = (kind: LoadOutcome["end"], at: number): LoadOutcome => {
		const o: LoadOutcome = { end: kind, offset: ctx.base + at, globals: ctx.run.imports };
		if (ctx.run.assumed !== undefined) o.assumed = ctx.run.assumed;
		return o;
	};
	let first: PickleAnalysis["firstPickle"] | undefined;
	/** A load read differently from memory and through a file object (the first one, any one). */
	let firstDiverged = false;
	let diverged = false;
	if (pos >= bytes.length) {
		malformed = "empty pickle stream";
		first = { end: "truncated", offset: ctx.base + pos, globals: 0 };
	}
	while (malformed === undefined && pos < bytes.length) {
		try {
			pos = runOne(ctx, pos, false);
			diverged ||= ctx.run.diverged;
			if (first === undefined) {
				first = outcome("stop", pos);
				firstDiverged = ctx.run.diverged;
			}
			end = pos;
			pickles++;
			if (options.maxPickles !== undefined && pickles >= options.maxPickles) break;
			// Anything after a STOP is either another pickle (loaders such as legacy torch call
			// pickle.load repeatedly) or garbage; both are analysed, garbage is malformed.
			if (pos < bytes.length && !isPickleOpcode(bytes[pos])) {
				malformed = `${bytes.length - pos} trailing bytes at ${hex(pos)} after the pickle's STOP`;
				errorAt = pos;
			}
		} catch (e) {
			if (!(e instanceof Stop)) throw e;
			diverged ||= ctx.run.diverged;
			if (first === undefined) {
				first = outcome(e.kind === "eof" ? "truncated" : e.kind, e.at ?? pos);
				firstDiverged = ctx.run.diverged;
			}
			if (e.kind === "eof" && options.partial) {
				incomplete = true;
				break;
			}
			if (e.kind === "budget") {
				ctx.findings.push({
					id: "pickle-too-complex",
					severity: "high",
					message: `analysis stopped: ${e.message}; the rest of the pickle was not checked`,
					location: where(ctx, pos),
				});
			}
			malformed = pickles > 0 ? `after ${pickles} complete pickle(s): ${e.message}` : e.message;
			errorAt = pos;
			break;
		}
	}
	// After a parse error the loader stops, but a scanner that gives up there is what
	// "payload after garbage" bypasses rely on: look for later PROTO starts and analyse those too.
	if (errorAt !== undefined && ctx.opsLeft > 0 && options.resync !== false) {
		let from = errorAt + 1;
		for (let tries = 0; tries < MAX_RESYNC && ctx.opsLeft > 0; tries++) {
			const p = bytes.indexOf(0x80, from);
			if (p < 0 || p + 1 >= bytes.length) break;
			from = p + 1;
			if (!startsWithProto(bytes, p) || (bytes[p + 1] ?? 0) < 2) continue;
			try {
				from = runOne(ctx, p, false);
			} catch (e) {
				if (!(e instanceof Stop)) throw e;
			}
		}
	}
	// A FRAME whose buffer had bytes left when an argument ran past its end reads otherwise through a file object
	// without peek (io.BytesIO: torch.load's data.pkl): those loads too, their globals added to ours.
	let fileFirst: LoadOutcome | undefined;
	if (diverged) {
		ctx.dedupe = true;
		let p = options.start ?? 0;
		for (let n = 0; ctx.opsLeft > 0; ) {
			try {
				p = runOne(ctx, p, true);
				if (n++ === 0) fileFirst = outcome("stop", p);
				if (n === options.maxPickles || p >= bytes.length || !isPickleOpcode(bytes[p])) break;
			} catch (e) {
				if (!(e instanceof Stop)) throw e;
				if (n === 0) fileFirst = outcome(e.kind === "eof" ? "truncated" : e.kind, e.at ?? p);
				if (e.kind === "eof" && options.partial) incomplete = true;
				break;
			}
		}
	}
	if (ctx.findingsDropped > 0) {
		ctx.findings.push({
			id: "too-many-findings",
			severity: "high",
			message: `${ctx.findingsDropped} further findings not listed`,
			...(options.location ? { location: options.location } : {}),
		});
	}
	const out: PickleAnalysis = {
		findings: ctx.findings,
		globals: ctx.globals,
		end,
		pickles,
		firstPickle: first ?? { end: "truncated", offset: ctx.base + pos, globals: 0 },
	};
	if (firstDiverged && fileFirst !== undefined) out.firstPickle.file = fileFirst;
	if (malformed !== undefined) out.malformed = malformed;
	if (incomplete) out.incomplete = true;
	return out;
}

/**
 * First look for a plain pickle file: a PROTO opcode (protocol 2+); a protocol
 * 0/1 stream opening the way pickle.dump opens one; or any stream that parses
 * as a pickle from its first byte (a payload prefixed with "N0" still runs) —
 * judged by a bounded trial parse that must reach STOP, or import something
 * before the head runs out.
 */
export function looksLikePickle(head: Buffer): boolean {
	if (head.length < 2) return false;
	if (startsWithProto(head)) return true;
	const c = head[0] as number;
	if (!isPickleOpcode(c) || PLAIN_FAILS_FIRST.has(c)) return false;
	// protocol 0/1: MARK, EMPTY_DICT/LIST/TUPLE, GLOBAL "module\n", a text string
	if (c === 0x63 && /^c[A-Za-z_][\w.]*\n[^\n]+\n/.test(head.subarray(0, 512).toString("latin1"))) return true;
	if ((c === 0x28 || c === 0x7d || c === 0x5d || c === 0x29) && isPickleOpcode(head[1])) return true;
	if ((c === 0x53 || c === 0x56) && head.subarray(0, 512).includes(0x0a) && (head[1] === 0x27 || c === 0x56))
		return true;
	const trial = analyzePickle(head.subarray(0, 64 * 1024), {
		policy: { allowPickle: true },
		partial: true,
		maxOps: 100_000,
		maxPickles: 1,
		forbiddenFinding: false,
	});
	return trial.pickles > 0 || (trial.incomplete === true && trial.globals.length > 0);
}
