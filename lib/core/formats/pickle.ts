/**
 * Static pickle analysis: walks the opcode stream exactly as CPython's
 * unpickler would (protocols 0–5, every opcode of `pickletools`) but never
 * imports or calls anything. A symbolic stack and memo are tracked only as far
 * as needed to know which globals the pickle would import — in particular the
 * module and name strings STACK_GLOBAL takes from the stack, which attackers
 * route through the memo (PUT/GET) to dodge scanners that only read GLOBAL.
 *
 * Work is bounded (opcodes, stack depth, memo size, string decoding), and no
 * allocation depends on a length field: arguments are subarrays of the input.
 * The hot path allocates little: numbers and bytes are skipped, and binary
 * strings are kept as offsets, decoded only when STACK_GLOBAL takes them.
 */
import { dangerReason, describeGlobal, isAllowed } from "./pickle-policy";
import type { Finding, ScanPolicy } from "./types";

/** A global the pickle imports (GLOBAL, STACK_GLOBAL or INST), with the opcode's offset. */
export interface PickleGlobal {
	module: string;
	name: string;
	offset: number;
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
}

export const DEFAULT_MAX_OPS = 10_000_000;
const MAX_STACK = 1_000_000;
const MAX_MARK_DEPTH = 100_000;
const MAX_MEMO = 1_000_000;
const MAX_FINDINGS = 200;
/** Strings longer than this are never module or attribute names: they are tracked as "some string". */
const MAX_NAME_BYTES = 1024;
const MAX_RESYNC = 64;
/** Memo keys below this live in an array (torch numbers them 0, 1, 2, …); others in a Map. */
const MEMO_DENSE = 1 << 20;

/** Symbolic stack values: only strings and globals matter, everything else is opaque. */
type Item =
	| { readonly k: "str"; readonly v: string | undefined }
	/** A binary string of at most MAX_NAME_BYTES, decoded only if STACK_GLOBAL takes it: bytes [s, e) of the buffer. */
	| { readonly k: "bstr"; readonly s: number; readonly e: number; readonly utf8: boolean }
	| { readonly k: "global"; readonly g: PickleGlobal }
	| { readonly k: "other" }
	| { readonly k: "unknown" };

const OTHER: Item = { k: "other" };
const UNKNOWN: Item = { k: "unknown" };
const LONG_STR: Item = { k: "str", v: undefined };

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
	) {
		super(message);
	}
}

/** Decodes Python's `codecs.escape_decode` (the STRING opcode's quoted argument) as latin-1 text. */
function escapeDecode(s: Buffer): string {
	let out = "";
	for (let i = 0; i < s.length; i++) {
		const c = s[i] as number;
		if (c !== 0x5c || i + 1 >= s.length) {
			out += String.fromCharCode(c);
			continue;
		}
		const n = s[++i] as number;
		const ch = String.fromCharCode(n);
		const simple: Record<string, string> = {
			"\\": "\\",
			"'": "'",
			'"': '"',
			a: "\x07",
			b: "\b",
			f: "\f",
			n: "\n",
			r: "\r",
			t: "\t",
			v: "\v",
			"\n": "",
		};
		if (ch in simple) out += simple[ch];
		else if (n >= 0x30 && n <= 0x37) {
			let v = n - 0x30;
			for (let k = 0; k < 2 && i + 1 < s.length && (s[i + 1] as number) >= 0x30 && (s[i + 1] as number) <= 0x37; k++)
				v = v * 8 + ((s[++i] as number) - 0x30);
			out += String.fromCharCode(v & 0xff);
		} else if (ch === "x") {
			const hex = s.toString("latin1", i + 1, i + 3);
			if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Stop("error", "STRING has an invalid \\x escape");
			out += String.fromCharCode(Number.parseInt(hex, 16));
			i += 2;
		} else out += `\\${ch}`;
	}
	return out;
}

/** Decodes Python's raw-unicode-escape (the UNICODE opcode): only \uXXXX and \UXXXXXXXX after an odd run of backslashes. */
function rawUnicodeEscape(s: Buffer): string {
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
			if (hex.length !== w || !/^[0-9a-fA-F]+$/.test(hex))
				throw new Stop("error", "UNICODE has a truncated \\u escape");
			const cp = Number.parseInt(hex, 16);
			if (cp > 0x10ffff) throw new Stop("error", "UNICODE escape beyond U+10FFFF");
			out += "\\".repeat(run - 1) + String.fromCodePoint(cp);
			i = j + 1 + w;
		} else {
			out += "\\".repeat(run);
			i = j;
		}
	}
	return out;
}

interface Ctx {
	buf: Buffer;
	policy: ScanPolicy;
	location: string | undefined;
	base: number;
	opsLeft: number;
	findings: Finding[];
	globals: PickleGlobal[];
	seen: Set<string>;
	findingsDropped: number;
	/** bytes in the whole stream (AnalyzeOptions.streamSize) */
	streamSize: number;
	plainLoader: boolean;
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
	if (ctx.globals.length < 10_000) ctx.globals.push({ ...g, offset: ctx.base + g.offset });
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

/**
 * Runs one pickle from `start` to its STOP. Returns the offset after STOP;
 * throws Stop for a truncated stream, a rule CPython would reject, or an exhausted budget.
 */
function runOne(ctx: Ctx, start: number): number {
	const buf = ctx.buf;
	const len = buf.length;
	let pos = start;
	let stack: Item[] = [];
	const marks: Item[][] = [];
	// The memo: dense keys in an array, any others in a Map; `memoSize` counts both (MEMOIZE's key).
	const memoArr: Item[] = [];
	let memoMap: Map<number, Item> | undefined;
	let memoSize = 0;
	let memoOverflow = false;
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
		throw new Stop("error", `${msg} at offset 0x${(ctx.base + at).toString(16)}`);
	};
	const u8 = (): number => {
		need(1, "argument");
		return buf[pos++] as number;
	};
	// Little-endian integers from the bytes directly (`need` has checked the bounds): Buffer's
	// readUInt32LE & co. validate again and run cold in the interpreter on a CLI's only scan.
	const u16 = (): number => {
		need(2, "argument");
		const v = (buf[pos] as number) | ((buf[pos + 1] as number) << 8);
		pos += 2;
		return v;
	};
	const le32 = (at: number): number =>
		((buf[at] as number) |
			((buf[at + 1] as number) << 8) |
			((buf[at + 2] as number) << 16) |
			((buf[at + 3] as number) << 24)) >>>
		0;
	const u32 = (): number => {
		need(4, "argument");
		const v = le32(pos);
		pos += 4;
		return v;
	};
	const s32 = (): number => {
		need(4, "argument");
		const v = le32(pos) | 0;
		pos += 4;
		return v;
	};
	/** An 8-byte length; anything past the buffer is "truncated", so 2^53 is never reached meaningfully. */
	const u64 = (): number => {
		need(8, "argument");
		const lo = le32(pos);
		const hi = le32(pos + 4);
		pos += 8;
		return hi * 0x1_0000_0000 + lo;
	};
	/** A newline-terminated argument, without the newline (CPython strips exactly one byte). */
	const line = (what: string): Buffer => {
		const nl = buf.indexOf(0x0a, pos);
		if (nl < 0)
			throw new Stop("eof", `truncated: ${what} without newline at offset 0x${(ctx.base + pos).toString(16)}`);
		const b = buf.subarray(pos, nl);
		pos = nl + 1;
		return b;
	};
	/** A length-prefixed string of `n` bytes at `pos` (not decoded until STACK_GLOBAL needs it). */
	const binStr = (n: number, what: string, utf8: boolean): Item => {
		need(n, what);
		const s = pos;
		pos += n;
		return n > MAX_NAME_BYTES ? LONG_STR : { k: "bstr", s, e: pos, utf8 };
	};
	/** The string an item holds, if it is one STACK_GLOBAL can use. */
	const strOf = (it: Item): string | undefined =>
		it.k === "str" ? it.v : it.k === "bstr" ? buf.toString(it.utf8 ? "utf8" : "latin1", it.s, it.e) : undefined;
	/** Skips `n` argument bytes. */
	const skip = (n: number, what: string): void => {
		need(n, what);
		pos += n;
	};
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
	const popMark = (at: number): Item[] => {
		const items = stack;
		const prev = marks.pop();
		if (prev === undefined) return fail("MARK not found", at);
		stack = prev;
		return items;
	};
	const memoGet = (idx: number, at: number): Item => {
		const it = idx >= 0 && idx < MEMO_DENSE ? memoArr[idx] : memoLookup(idx);
		if (it !== undefined) return it;
		// Once entries were dropped for the memo cap, a miss is "something we did not keep", not an error.
		if (memoOverflow) return UNKNOWN;
		return fail(`memo key ${idx} not found`, at);
	};
	const memoPut = (idx: number, at: number): void => {
		const it = stack[stack.length - 1] ?? top(at);
		const dense = idx >= 0 && idx < MEMO_DENSE;
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
	const textInt = (b: Buffer, at: number): number => {
		const s = b.toString("latin1").trim();
		if (!/^[+-]?\d+$/.test(s)) return fail("memo index is not an integer", at);
		return Number(s);
	};
	const call = (callee: Item, opname: string, at: number): void => {
		// Normal pickles always call a global (directly or via the memo); calling the result of
		// another call or an unresolved value is how gadget chains work, so with --allow-pickle it is flagged.
		if (ctx.policy.allowPickle && callee.k !== "global") {
			addFinding(ctx, `indirect:${at}`, {
				id: "indirect-call",
				severity: "high",
				message: `${opname} calls a value that is not an imported global (a gadget chain)`,
				location: where(ctx, at),
			});
		}
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
				case 0x95: // FRAME: framing is transparent to the opcode stream
					u64();
					break;
				case 0x2e: // STOP
					pop(at);
					return pos;
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
				case 0x88: // NEWTRUE
				case 0x89: // NEWFALSE
				case 0x29: // EMPTY_TUPLE
				case 0x5d: // EMPTY_LIST
				case 0x7d: // EMPTY_DICT
				case 0x8f: // EMPTY_SET
				case 0x97: // NEXT_BUFFER (out-of-band buffer)
					push(OTHER);
					break;
				case 0x46: // FLOAT
				case 0x49: // INT
				case 0x4c: // LONG
					line("number");
					push(OTHER);
					break;
				case 0x4a: // BININT
				case 0x4b: // BININT1
				case 0x4d: {
					// BININT2
					const width = op === 0x4a ? 4 : op === 0x4b ? 1 : 2;
					if (len - pos < width) need(width, op === 0x4a ? "BININT" : op === 0x4b ? "BININT1" : "BININT2");
					pos += width;
					push(OTHER);
					break;
				}
				case 0x47: // BINFLOAT
					if (len - pos < 8) need(8, "BINFLOAT");
					pos += 8;
					push(OTHER);
					break;
				case 0x8a: // LONG1
					skip(u8(), "LONG1");
					push(OTHER);
					break;
				case 0x8b: {
					// LONG4
					const n = s32();
					if (n < 0) fail("LONG4 with negative length", at);
					skip(n, "LONG4");
					push(OTHER);
					break;
				}
				// strings: the only values STACK_GLOBAL accepts
				case 0x53: {
					// STRING: quoted, escape-decoded; CPython 3 decodes it to str (encoding="ASCII" by default)
					const b = line("STRING");
					const q = b[0];
					if (b.length < 2 || (q !== 0x22 && q !== 0x27) || b[b.length - 1] !== q)
						fail("STRING argument is not quoted", at);
					push(b.length > MAX_NAME_BYTES ? LONG_STR : { k: "str", v: escapeDecode(b.subarray(1, -1)) });
					break;
				}
				case 0x54: {
					// BINSTRING
					const n = s32();
					if (n < 0) fail("BINSTRING with negative length", at);
					push(binStr(n, "BINSTRING", false));
					break;
				}
				case 0x55: // SHORT_BINSTRING
					push(binStr(u8(), "SHORT_BINSTRING", false));
					break;
				case 0x56: {
					// UNICODE
					const b = line("UNICODE");
					push(b.length > MAX_NAME_BYTES ? LONG_STR : { k: "str", v: rawUnicodeEscape(b) });
					break;
				}
				case 0x58: {
					// BINUNICODE
					const n = u32();
					if (n > len - pos) need(n, "BINUNICODE");
					const it: Item = n > MAX_NAME_BYTES ? LONG_STR : { k: "bstr", s: pos, e: pos + n, utf8: true };
					pos += n;
					push(it);
					break;
				}
				case 0x8c: // SHORT_BINUNICODE
					if (pos >= len) need(1, "argument");
					push(binStr(buf[pos++] as number, "SHORT_BINUNICODE", true));
					break;
				case 0x8d: // BINUNICODE8
					push(binStr(u64(), "BINUNICODE8", true));
					break;
				// bytes-like
				case 0x42: // BINBYTES
					skip(u32(), "BINBYTES");
					push(OTHER);
					break;
				case 0x43: // SHORT_BINBYTES
					skip(u8(), "SHORT_BINBYTES");
					push(OTHER);
					break;
				case 0x8e: // BINBYTES8
					skip(u64(), "BINBYTES8");
					push(OTHER);
					break;
				case 0x96: // BYTEARRAY8
					skip(u64(), "BYTEARRAY8");
					push(OTHER);
					break;
				case 0x98: // READONLY_BUFFER
					top(at);
					break;
				// containers
				case 0x61: // APPEND
					pop(at);
					top(at);
					break;
				case 0x65: // APPENDS
				case 0x75: // SETITEMS
				case 0x90: // ADDITEMS
					popMark(at);
					top(at);
					break;
				case 0x73: // SETITEM (pops key and value; the dict stays)
					if (stack.length >= 3) {
						stack.pop();
						stack.pop();
					} else {
						pop(at);
						pop(at);
						top(at);
					}
					break;
				case 0x6c: // LIST
				case 0x74: // TUPLE
				case 0x64: // DICT
				case 0x91: {
					// FROZENSET
					const prev = marks.pop();
					if (prev === undefined) return fail("MARK not found", at);
					stack = prev;
					push(OTHER);
					break;
				}
				case 0x85: // TUPLE1 (replaces the top item)
					if (stack.length >= 1) stack[stack.length - 1] = OTHER;
					else pop(at);
					break;
				case 0x86: // TUPLE2
					if (stack.length >= 2) {
						stack.pop();
						stack[stack.length - 1] = OTHER;
					} else {
						pop(at);
						pop(at);
					}
					break;
				case 0x87: // TUPLE3
					pop(at);
					pop(at);
					pop(at);
					push(OTHER);
					break;
				// memo
				case 0x70: // PUT
					memoPut(textInt(line("PUT"), at), at);
					break;
				case 0x71: {
					// BINPUT
					if (pos >= len) need(1, "argument");
					const idx = buf[pos++] as number;
					const it = stack[stack.length - 1];
					if (it !== undefined && memoSize < MAX_MEMO) {
						if (memoArr[idx] === undefined) memoSize++;
						memoArr[idx] = it;
					} else memoPut(idx, at);
					break;
				}
				case 0x72: {
					// LONG_BINPUT
					const idx = u32();
					const it = stack[stack.length - 1];
					// Fast path of memoPut: a dense key while the memo has room.
					if (it !== undefined && idx < MEMO_DENSE && memoSize < MAX_MEMO) {
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
					push(memoGet(textInt(line("GET"), at), at));
					break;
				case 0x68: {
					// BINGET
					if (pos >= len) need(1, "argument");
					const it = memoArr[buf[pos++] as number] ?? memoGet(buf[pos - 1] as number, at);
					push(it);
					break;
				}
				case 0x6a: {
					// LONG_BINGET
					const idx = u32();
					push((idx < MEMO_DENSE ? memoArr[idx] : undefined) ?? memoGet(idx, at));
					break;
				}
				// imports and calls: what the analysis is for
				case 0x63: {
					// GLOBAL "module\nname\n"
					const m = line("GLOBAL module");
					const n = line("GLOBAL name");
					const g: PickleGlobal = { module: m.toString("utf8"), name: n.toString("utf8"), offset: at };
					judgeGlobal(ctx, g, "GLOBAL");
					push({ k: "global", g });
					break;
				}
				case 0x93: {
					// STACK_GLOBAL: module and name come from the stack (often via the memo)
					const name = pop(at);
					const mod = pop(at);
					const modStr = strOf(mod);
					const nameStr = strOf(name);
					if (modStr !== undefined && nameStr !== undefined) {
						const g: PickleGlobal = { module: modStr, name: nameStr, offset: at };
						judgeGlobal(ctx, g, "STACK_GLOBAL");
						push({ k: "global", g });
					} else {
						addFinding(ctx, `unresolved:${at}`, {
							id: "unresolved-global",
							severity: "high",
							message: "STACK_GLOBAL imports a global whose module or name cannot be determined statically",
							location: where(ctx, at),
						});
						push(UNKNOWN);
					}
					break;
				}
				case 0x69: {
					// INST "module\nname\n": import and call with the items above MARK
					const m = line("INST module");
					const n = line("INST name");
					const g: PickleGlobal = { module: m.toString("utf8"), name: n.toString("utf8"), offset: at };
					judgeGlobal(ctx, g, "INST");
					popMark(at);
					push(OTHER);
					break;
				}
				case 0x6f: {
					// OBJ: call the first item above MARK with the rest
					const items = popMark(at);
					const cls = items[0];
					if (cls === undefined) fail("OBJ without a class", at);
					else call(cls, "OBJ", at);
					push(OTHER);
					break;
				}
				case 0x52: {
					// REDUCE: pops the arguments, calls the callable below them, leaves the result
					if (stack.length >= 2) {
						stack.pop();
						call(stack[stack.length - 1] as Item, "REDUCE", at);
						stack[stack.length - 1] = OTHER;
					} else {
						pop(at);
						pop(at);
					}
					break;
				}
				case 0x81: // NEWOBJ
					pop(at);
					call(pop(at), "NEWOBJ", at);
					push(OTHER);
					break;
				case 0x92: // NEWOBJ_EX
					pop(at);
					pop(at);
					call(pop(at), "NEWOBJ_EX", at);
					push(OTHER);
					break;
				case 0x62: // BUILD: sets state (or calls __setstate__) on an object an allowed global built
					pop(at);
					top(at);
					break;
				case 0x50: // PERSID: resolved by the loader's persistent_load (torch: storages)
					if (ctx.plainLoader) fail("persistent id without a persistent_load", at);
					line("PERSID");
					push(OTHER);
					break;
				case 0x51: // BINPERSID (replaces the persistent id)
					if (ctx.plainLoader) fail("persistent id without a persistent_load", at);
					if (stack.length >= 1) stack[stack.length - 1] = OTHER;
					else pop(at);
					break;
				case 0x82: // EXT1
				case 0x83: // EXT2
				case 0x84: {
					// EXT4: imports whatever copyreg's extension registry maps the code to
					const code = op === 0x82 ? u8() : op === 0x83 ? u16() : u32();
					if (ctx.plainLoader) fail(`unregistered extension code ${code}`, at);
					addFinding(ctx, `ext:${at}`, {
						id: "extension-global",
						severity: "high",
						message: `EXT opcode imports extension code ${code} from copyreg's registry, which cannot be resolved statically`,
						location: where(ctx, at),
					});
					push(UNKNOWN);
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
		plainLoader: options.plainLoader === true,
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

	if (pos >= bytes.length) malformed = "empty pickle stream";
	while (malformed === undefined && pos < bytes.length) {
		try {
			pos = runOne(ctx, pos);
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
				from = runOne(ctx, p);
			} catch (e) {
				if (!(e instanceof Stop)) throw e;
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
	const out: PickleAnalysis = { findings: ctx.findings, globals: ctx.globals, end, pickles };
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
	if (!isPickleOpcode(c)) return false;
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
