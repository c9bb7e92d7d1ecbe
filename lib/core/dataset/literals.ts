/**
 * Literals that every match of a regular expression contains: a test much cheaper than the expression that rejects
 * the texts it cannot match. The injected-output prefilter is a large alternation; V8 tries its alternatives at every
 * position of every completion, which was a fifth of a dataset scan. Nearly every completion holds none of the words
 * the patterns need ("skip" … "review", "send" … "password"), and one pass over its characters with table lookups
 * says so.
 *
 * The reading is sound for the "i" flag without "u" on ASCII text (the only use): a text the expression matches
 * always passes `LiteralFilter.test`. What the reader cannot bound (a class, a repetition, a back reference) is taken
 * to match anything, which only weakens the filter; a pattern with an alternative that needs no literal at all makes
 * the filter undefined (use the expression).
 */

/** Exact sets (all strings a part can match) are kept up to this size; past it, the part's literals are used. */
const MAX_EXACT = 64;
/** A class of up to this many characters is a set of one-character strings. */
const MAX_CLASS = 8;
/** The most entries (states × character classes) of the filter's automaton: 64 MB. */
const MAX_TABLE = 1 << 24;

/** What the reader knows of a part of an expression. */
interface Reading {
	/** every string it can match (lowercased), when that is a small finite set */
	readonly exact: ReadonlySet<string> | undefined;
	/** sets of literals (lowercased, none empty): each match contains one literal of every set */
	readonly all: readonly ReadonlySet<string>[];
}

const ANYTHING: Reading = { exact: undefined, all: [] };
const EMPTY: Reading = { exact: new Set([""]), all: [] };

class Unreadable extends Error {}

/**
 * For an expression's source (flags "iu", or "i" on ASCII text): its top-level alternatives, each as the literal sets
 * of which a match contains one literal each (none implied by another; the one with the longest shortest literal
 * first). Undefined when an alternative needs none, or the source cannot be read.
 */
export function requiredLiterals(source: string): string[][][] | undefined {
	const r = new Reader(source);
	try {
		const alternatives = r.alternatives();
		if (r.i !== source.length) return undefined;
		const out: string[][][] = [];
		for (const a of alternatives) {
			const sets = needed(a);
			if (sets.length === 0) return undefined;
			out.push(strongest(sets.map((s) => [...s])));
		}
		return out;
	} catch (e) {
		if (e instanceof Unreadable) return undefined;
		throw e;
	}
}

/** The sets a match of `r` needs: its literal sets, and its exact set when no member is empty. */
function needed(r: Reading): ReadonlySet<string>[] {
	const sets = new Map<string, ReadonlySet<string>>();
	const all = r.exact !== undefined && r.exact.size > 0 && !r.exact.has("") ? [...r.all, r.exact] : r.all;
	for (const s of all) sets.set([...s].sort().join("\u0000"), s);
	return [...sets.values()];
}

/** The best single set of `r`'s needed ones (longest shortest literal, then fewest), or undefined. */
function bestSet(r: Reading): ReadonlySet<string> | undefined {
	let best: ReadonlySet<string> | undefined;
	let bestLen = -1;
	for (const s of needed(r)) {
		const len = Math.min(...[...s].map((x) => x.length));
		if (len > bestLen || (len === bestLen && best !== undefined && s.size < best.size)) {
			best = s;
			bestLen = len;
		}
	}
	return best;
}

function product(a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> | undefined {
	if (a.size * b.size > MAX_EXACT) return undefined;
	const out = new Set<string>();
	for (const x of a) for (const y of b) out.add(x + y);
	return out;
}

/** A sequence of parts: the literals of each, and of every run of parts whose exact sets multiply out. */
function sequence(parts: readonly Reading[]): Reading {
	const all: ReadonlySet<string>[] = [];
	let run: ReadonlySet<string> = EMPTY.exact as ReadonlySet<string>;
	let exact: ReadonlySet<string> | undefined = run;
	const flush = () => {
		if (run.size > 0 && ![...run].includes("")) all.push(run);
		run = EMPTY.exact as ReadonlySet<string>;
	};
	for (const p of parts) {
		all.push(...p.all);
		exact = exact !== undefined && p.exact !== undefined ? product(exact, p.exact) : undefined;
		if (p.exact === undefined) {
			flush();
			continue;
		}
		const next = product(run, p.exact);
		if (next === undefined) {
			flush();
			run = p.exact;
		} else run = next;
	}
	flush();
	return { exact, all };
}

/** Alternatives: every match is one of them, so it holds a literal of the union of one needed set of each. */
function union(alternatives: readonly Reading[]): Reading {
	let exact: Set<string> | undefined = new Set();
	const joined = new Set<string>();
	let bounded = true;
	for (const a of alternatives) {
		if (exact !== undefined && a.exact !== undefined && exact.size + a.exact.size <= MAX_EXACT)
			for (const x of a.exact) exact.add(x);
		else exact = undefined;
		const s = bestSet(a);
		if (s === undefined) bounded = false;
		else for (const x of s) joined.add(x);
	}
	return { exact, all: bounded && joined.size > 0 ? [joined] : [] };
}

/** A part repeated at least `min` times (and at most `max`, Infinity for no bound). */
function repeated(r: Reading, min: number, max: number): Reading {
	if (min === 0) return max === 1 && r.exact !== undefined ? { exact: new Set([...r.exact, ""]), all: [] } : ANYTHING;
	if (min === 1 && max === 1) return r;
	// at least once: whatever one match needs, the repetition needs
	return { exact: undefined, all: needed(r) };
}

/** A recursive-descent reader of the expression syntax ("i" flag, no "u") that the prefilter is written in. */
class Reader {
	i = 0;
	constructor(private readonly s: string) {}

	alternatives(): Reading[] {
		const out = [this.sequence()];
		while (this.s[this.i] === "|") {
			this.i++;
			out.push(this.sequence());
		}
		return out;
	}

	private sequence(): Reading {
		const parts: Reading[] = [];
		while (this.i < this.s.length && this.s[this.i] !== "|" && this.s[this.i] !== ")") {
			const atom = this.atom();
			parts.push(this.quantified(atom));
		}
		return sequence(parts);
	}

	private quantified(atom: Reading): Reading {
		const c = this.s[this.i];
		let min = 1;
		let max = 1;
		if (c === "?" || c === "*" || c === "+") {
			min = c === "+" ? 1 : 0;
			max = c === "?" ? 1 : Number.POSITIVE_INFINITY;
			this.i++;
		} else if (c === "{") {
			const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
			if (m === null) return atom; // a literal "{" (allowed without "u"); read as the next atom
			min = Number(m[1]);
			max = m[2] === undefined ? min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
			this.i += m[0].length;
		} else return atom;
		if (this.s[this.i] === "?") this.i++; // lazy: the same strings
		return repeated(atom, min, max);
	}

	private atom(): Reading {
		const s = this.s;
		const c = s[this.i] as string;
		if (c === "(") {
			const rest = s.slice(this.i, this.i + 4);
			const look = /^\(\?(?:=|!|<=|<!)/.exec(rest);
			if (look !== null) {
				// an assertion consumes nothing
				this.i += look[0].length;
				this.alternatives();
				this.close();
				return EMPTY;
			}
			if (rest.startsWith("(?:")) this.i += 3;
			else if (rest.startsWith("(?<")) {
				const end = s.indexOf(">", this.i);
				if (end < 0) throw new Unreadable();
				this.i = end + 1;
			} else if (rest.startsWith("(?")) throw new Unreadable();
			else this.i++;
			const inner = this.alternatives();
			this.close();
			return inner.length === 1 ? (inner[0] as Reading) : union(inner);
		}
		if (c === "[") return this.charClass();
		if (c === "\\") return this.escape();
		this.i++;
		if (c === ".") return ANYTHING;
		if (c === "^" || c === "$") return EMPTY;
		if (c === ")" || c === "|") throw new Unreadable();
		// a character beyond the BMP is one atom ("u"): a quantifier after it applies to both its code units
		const cp = s.codePointAt(this.i - 1) as number;
		if (cp > 0xffff) this.i++;
		return literal(String.fromCodePoint(cp));
	}

	private close(): void {
		if (this.s[this.i] !== ")") throw new Unreadable();
		this.i++;
	}

	/** An escape outside a class: a character, a set (anything), an assertion (nothing) or a back reference (anything). */
	private escape(): Reading {
		const cp = this.escaped(false);
		if (cp === "assertion") return EMPTY;
		if (cp === undefined) return ANYTHING;
		return literal(String.fromCodePoint(cp));
	}

	/** The code unit an escape stands for; undefined for a set or a back reference; "assertion" for \b, \B. */
	private escaped(inClass: boolean): number | undefined | "assertion" {
		const s = this.s;
		const c = s[this.i + 1];
		if (c === undefined) throw new Unreadable();
		this.i += 2;
		const hex = (n: number): number | undefined => {
			const h = s.slice(this.i, this.i + n);
			if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) return undefined;
			this.i += n;
			return Number.parseInt(h, 16);
		};
		switch (c) {
			case "b":
				return inClass ? 8 : "assertion";
			case "B":
				if (inClass) throw new Unreadable();
				return "assertion";
			case "d":
			case "D":
			case "w":
			case "W":
			case "s":
			case "S":
				return undefined;
			case "n":
				return 10;
			case "r":
				return 13;
			case "t":
				return 9;
			case "f":
				return 12;
			case "v":
				return 11;
			case "0":
				if (/[0-9]/.test(s[this.i] ?? "")) throw new Unreadable(); // legacy octal
				return 0;
			case "x":
				return hex(2) ?? 0x78;
			case "u":
				if (s[this.i] === "{") {
					const end = s.indexOf("}", this.i);
					if (end < 0) throw new Unreadable();
					const cp = Number.parseInt(s.slice(this.i + 1, end), 16);
					this.i = end + 1;
					return cp;
				}
				return hex(4) ?? 0x75;
			case "p":
			case "P":
				// a property ("u"): a set
				if (s[this.i] === "{") {
					const end = s.indexOf("}", this.i);
					if (end < 0) throw new Unreadable();
					this.i = end + 1;
					return undefined;
				}
				return c.charCodeAt(0);
			case "c": {
				const l = s[this.i];
				if (l !== undefined && /[a-zA-Z]/.test(l)) {
					this.i++;
					return l.charCodeAt(0) % 32;
				}
				throw new Unreadable();
			}
			case "k":
				if (inClass) return 0x6b;
				if (s[this.i] === "<") {
					const end = s.indexOf(">", this.i);
					if (end < 0) throw new Unreadable();
					this.i = end + 1;
				}
				return undefined;
			default:
				if (/[1-9]/.test(c)) {
					if (inClass) throw new Unreadable();
					while (/[0-9]/.test(s[this.i] ?? "")) this.i++;
					return undefined;
				}
				return c.charCodeAt(0);
		}
	}

	/** A class: a small set of characters (lowercased), or anything (negated, large, or holding a set escape). */
	private charClass(): Reading {
		const s = this.s;
		this.i++;
		const negated = s[this.i] === "^";
		if (negated) this.i++;
		const chars = new Set<string>();
		let bounded = !negated;
		const member = (): number | undefined => {
			if (s[this.i] === "\\") {
				const cp = this.escaped(true);
				return cp === "assertion" ? undefined : cp;
			}
			const cp = s.codePointAt(this.i) as number;
			this.i += cp > 0xffff ? 2 : 1;
			return cp;
		};
		// "[]" matches nothing (no "u"): read as an empty set, which bounds nothing
		while (this.i < s.length && s[this.i] !== "]") {
			const lo = member();
			let hi = lo;
			if (s[this.i] === "-" && this.i + 1 < s.length && s[this.i + 1] !== "]") {
				this.i++;
				hi = member();
			}
			if (lo === undefined || hi === undefined) {
				bounded = false;
				continue;
			}
			if (hi - lo >= MAX_CLASS) bounded = false;
			else for (let cp = lo; cp <= hi; cp++) chars.add(lowerAscii(String.fromCodePoint(cp)));
		}
		if (s[this.i] !== "]") throw new Unreadable();
		this.i++;
		if (!bounded || chars.size === 0 || chars.size > MAX_CLASS) return ANYTHING;
		return { exact: chars, all: [] };
	}
}

function literal(c: string): Reading {
	return { exact: new Set([lowerAscii(c)]), all: [] };
}

/** ASCII letters in lower case; other characters as they are (the filter's alphabet folds their cases). */
function lowerAscii(c: string): string {
	return /^[A-Z]$/.test(c) ? c.toLowerCase() : c;
}

/**
 * A test of whether a text holds what a list of expressions (flags "iu") needs: for each expression, its
 * alternatives' literal sets (`requiredLiterals`). One pass of an Aho-Corasick automaton over the text marks the
 * literals it holds; then an expression is possible when one of its alternatives has a marked literal in every set.
 * The automaton reads characters as "iu" compares them: each character that matches a literal's character (found by
 * V8's own case-insensitive matching over the whole BMP, so "K", the Kelvin sign and "k" are one letter, as are "ς"
 * and "σ") is read as that character's class; any other character ends every literal.
 */
export class LiteralFilter {
	private readonly ids = new Map<string, number>();
	/** every expression's alternatives, one list: per alternative, per set, literal ids */
	private readonly alternatives: Int32Array[][];
	/** the alternatives whose first set holds the literal: only they need checking when it is found */
	private readonly keyOf: Int32Array[];
	/** the literals found in the text being read: those stamped with this read's number */
	private readonly stamp: Uint32Array;
	private read = 0;
	/** the alphabet: each BMP code unit's class (0: in no literal; surrogates too) */
	private readonly classOf = new Uint16Array(0x10000);
	private readonly classes: number;
	/** the automaton: next state by state * classes + class */
	private readonly delta: Int32Array;
	/** the literals that end at a state (its own and its suffixes'): ids outIds[outAt[s], outAt[s + 1]) */
	private readonly outAt: Int32Array;
	private readonly outIds: Int32Array;
	/** each alternative's expression */
	private readonly exprOf: Int32Array;
	private readonly expressions: number;
	/**
	 * The automaton for ASCII text (nearly every text): only the states ASCII characters reach, over only the classes of
	 * ASCII characters — a table a fraction of the size, so that its rows stay in the cache. `asciiClass`: a code
	 * unit's column; a transition is the next state's row offset, or where literals end at that state, its number
	 * bitwise-negated (the row is then at number × `asciiWidth`, its literals at `asciiOutAt`).
	 */
	private readonly asciiClass = new Uint8Array(128);
	private readonly asciiDelta: Int32Array;
	private readonly asciiWidth: number;
	private readonly asciiOutAt: Int32Array;
	private readonly asciiOutIds: Int32Array;
	/** per ASCII state, the read that last ended a literal there; those states, in the order reached */
	private readonly asciiSeen: Uint32Array;
	private visited = new Int32Array(64);
	/** 1 for a literal that is some alternative's key */
	private readonly isKey: Uint8Array;
	/** the keys found by the last read: `found[0, foundCount)` */
	private found = new Int32Array(64);
	private foundCount = 0;

	/**
	 * Undefined when a literal holds a character beyond the BMP (case folding there is left to the expressions), or the
	 * automaton could be larger than MAX_TABLE entries (a policy listing thousands of Chinese words: states × classes).
	 */
	static of(expressions: readonly string[][][][]): LiteralFilter | undefined {
		const literals = new Set(expressions.flat(3));
		if ([...literals].some((l) => /[\ud800-\udfff]/.test(l))) return undefined;
		let length = 1;
		const chars = new Set<string>();
		for (const l of literals) {
			length += l.length;
			for (const ch of l) chars.add(ch);
		}
		// each character's class may hold its case forms too, but never more classes than characters
		return length * (chars.size + 1) > MAX_TABLE ? undefined : new LiteralFilter(expressions);
	}

	private constructor(expressions: readonly string[][][][]) {
		this.alternatives = expressions.flatMap((alternatives) =>
			alternatives.map((sets) => sets.map((set) => Int32Array.from(set, (l) => this.id(l)))),
		);
		this.exprOf = Int32Array.from(expressions.flatMap((alternatives, k) => alternatives.map(() => k)));
		this.expressions = expressions.length;
		this.stamp = new Uint32Array(this.ids.size);
		const keyOf: number[][] = Array.from({ length: this.ids.size }, () => []);
		this.alternatives.forEach((sets, a) => {
			for (const id of sets[0] ?? []) (keyOf[id] as number[]).push(a);
		});
		this.keyOf = keyOf.map((a) => Int32Array.from(a));
		this.classes = this.alphabet();
		const K = this.classes;
		const classOf = (c: number) => this.classOf[c] as number;
		// the trie, then its failure links breadth first; every state's transitions are completed from its failure's
		const children: Map<number, number>[] = [new Map()];
		const ends: number[][] = [[]];
		for (const [text, id] of this.ids) {
			let s = 0;
			for (let k = 0; k < text.length; k++) {
				const c = classOf(text.charCodeAt(k));
				let next = (children[s] as Map<number, number>).get(c);
				if (next === undefined) {
					next = children.length;
					children.push(new Map());
					ends.push([]);
					(children[s] as Map<number, number>).set(c, next);
				}
				s = next;
			}
			(ends[s] as number[]).push(id);
		}
		const states = children.length;
		const delta = new Int32Array(states * K);
		const fail = new Int32Array(states);
		const out: number[][] = ends.map((e) => [...e]);
		const queue: number[] = [];
		for (const [c, next] of children[0] as Map<number, number>) {
			delta[c] = next;
			queue.push(next);
		}
		for (let q = 0; q < queue.length; q++) {
			const s = queue[q] as number;
			const f = fail[s] as number;
			(out[s] as number[]).push(...(out[f] as number[]));
			for (let c = 1; c < K; c++) {
				const next = (children[s] as Map<number, number>).get(c);
				if (next === undefined) delta[s * K + c] = delta[f * K + c] as number;
				else {
					delta[s * K + c] = next;
					fail[next] = delta[f * K + c] as number;
					queue.push(next);
				}
			}
		}
		this.delta = delta;
		this.outAt = new Int32Array(states + 1);
		for (let s = 0; s < states; s++) this.outAt[s + 1] = (this.outAt[s] as number) + (out[s] as number[]).length;
		this.outIds = Int32Array.from(out.flat());
		// the ASCII automaton: columns for the classes of ASCII characters (0, no literal's, first), states breadth first
		const columns = [0];
		for (let c = 0; c < 128; c++) {
			const k = classOf(c);
			let j = columns.indexOf(k);
			if (j < 0) j = columns.push(k) - 1;
			this.asciiClass[c] = j;
		}
		const W = columns.length;
		const idOf = new Map<number, number>([[0, 0]]);
		const order = [0];
		for (let q = 0; q < order.length; q++) {
			const s = order[q] as number;
			for (const k of columns) {
				const t = delta[s * K + k] as number;
				if (!idOf.has(t)) {
					idOf.set(t, order.length);
					order.push(t);
				}
			}
		}
		this.asciiWidth = W;
		this.asciiDelta = new Int32Array(order.length * W);
		for (let i = 0; i < order.length; i++) {
			for (let j = 0; j < W; j++) {
				const t = delta[(order[i] as number) * K + (columns[j] as number)] as number;
				const id = idOf.get(t) as number;
				this.asciiDelta[i * W + j] = (this.outAt[t + 1] as number) > (this.outAt[t] as number) ? ~id : id * W;
			}
		}
		this.asciiOutAt = new Int32Array(order.length + 1);
		const asciiOut: number[] = [];
		for (let i = 0; i < order.length; i++) {
			const t = order[i] as number;
			for (let k = this.outAt[t] as number; k < (this.outAt[t + 1] as number); k++)
				asciiOut.push(this.outIds[k] as number);
			this.asciiOutAt[i + 1] = asciiOut.length;
		}
		this.asciiOutIds = Int32Array.from(asciiOut);
		this.asciiSeen = new Uint32Array(order.length);
		this.isKey = Uint8Array.from(this.keyOf, (a) => (a.length > 0 ? 1 : 0));
	}

	/**
	 * Classes for the literals' characters: two characters are in one class when "iu" matching makes one match the
	 * other (or both match a third). Returns the count (with class 0, the characters of no literal).
	 */
	private alphabet(): number {
		const chars = new Set<string>();
		for (const l of this.ids.keys()) for (const ch of l) chars.add(ch);
		// union-find over code units, joined by each literal character's equivalents
		const parent = new Map<number, number>();
		const find = (c: number): number => {
			const p = parent.get(c) ?? c;
			if (p === c) return c;
			const root = find(p);
			parent.set(c, root);
			return root;
		};
		const members = new Set<number>();
		for (const ch of chars) {
			const same = equivalents(ch);
			for (const c of same) {
				members.add(c);
				const a = find(c);
				const b = find(same[0] as number);
				if (a !== b) parent.set(a, b);
			}
		}
		const ids = new Map<number, number>();
		for (const c of members) {
			const root = find(c);
			let id = ids.get(root);
			if (id === undefined) {
				id = ids.size + 1;
				ids.set(root, id);
			}
			this.classOf[c] = id;
		}
		return ids.size + 1;
	}

	private id(literal: string): number {
		let id = this.ids.get(literal);
		if (id === undefined) {
			id = this.ids.size;
			this.ids.set(literal, id);
		}
		return id;
	}

	/** Whether some expression may match `text`; `ascii`: the text is all ASCII (it is then read faster). */
	test(text: string, ascii = false): boolean {
		const n = this.scan(text, ascii);
		const found = this.found;
		for (let f = 0; f < n; f++)
			for (const a of this.keyOf[found[f] as number] as Int32Array) if (this.holds(a)) return true;
		return false;
	}

	/** Per expression (in the order given), 1 when it may match `text`. */
	possible(text: string): Uint8Array {
		const out = new Uint8Array(this.expressions);
		const n = this.scan(text, false);
		for (let f = 0; f < n; f++)
			for (const a of this.keyOf[this.found[f] as number] as Int32Array)
				if (this.holds(a)) out[this.exprOf[a] as number] = 1;
		return out;
	}

	/** Has the text just read a literal of every set of alternative `a`? */
	private holds(a: number): boolean {
		const stamp = this.stamp;
		const read = this.read;
		for (const set of this.alternatives[a] as Int32Array[]) {
			let found = false;
			for (let k = 0; k < set.length; k++)
				if (stamp[set[k] as number] === read) {
					found = true;
					break;
				}
			if (!found) return false;
		}
		return true;
	}

	/** Read `text`: its literals stamped with a new read number; returns how many keys it holds (`found`). */
	private scan(text: string, ascii: boolean): number {
		// a fresh stamp per read: nothing to clear (a wrap after 2^32 reads clears once)
		if (++this.read === 0xffffffff) {
			this.stamp.fill(0);
			this.asciiSeen.fill(0);
			this.read = 1;
		}
		this.foundCount = 0;
		const n = text.length;
		if (ascii) {
			const delta = this.asciiDelta;
			const cls = this.asciiClass;
			const W = this.asciiWidth;
			const seen = this.asciiSeen;
			const read = this.read;
			let visited = this.visited;
			let nv = 0;
			let row = 0;
			// the states where literals end, each once (a common letter that is a literal ends one at every turn)
			for (let i = 0; i < n; i++) {
				const v = delta[row + (cls[text.charCodeAt(i)] as number)] as number;
				if (v >= 0) row = v;
				else {
					const st = ~v;
					row = st * W;
					if (seen[st] !== read) {
						seen[st] = read;
						if (nv === visited.length) {
							const next = new Int32Array(nv * 2);
							next.set(visited);
							visited = next;
							this.visited = visited;
						}
						visited[nv++] = st;
					}
				}
			}
			const at = this.asciiOutAt;
			for (let k = 0; k < nv; k++) {
				const st = visited[k] as number;
				this.mark(this.asciiOutIds, at[st] as number, at[st + 1] as number);
			}
		} else {
			const { delta, classOf, classes, outAt } = this;
			let s = 0;
			for (let i = 0; i < n; i++) {
				s = delta[s * classes + (classOf[text.charCodeAt(i)] as number)] as number;
				const end = outAt[s + 1] as number;
				if (end > (outAt[s] as number)) this.mark(this.outIds, outAt[s] as number, end);
			}
		}
		return this.foundCount;
	}

	/** Stamp the literals `ids[from, to)`; the keys among those not stamped yet onto `found`. */
	private mark(ids: Int32Array, from: number, to: number): void {
		const stamp = this.stamp;
		const read = this.read;
		for (let k = from; k < to; k++) {
			const id = ids[k] as number;
			if (stamp[id] === read) continue;
			stamp[id] = read;
			if (this.isKey[id] === 1) {
				if (this.foundCount === this.found.length) {
					const next = new Int32Array(this.found.length * 2);
					next.set(this.found);
					this.found = next;
				}
				this.found[this.foundCount++] = id;
			}
		}
	}
}

/**
 * The alternative's distinct sets less those another implies (each literal of the other holds one of theirs: the
 * "e|es|ed|ing" of "approv(?:e|es|ed|ing)" beside "approve|approves|…"), the one with the longest shortest literal
 * first. A one-letter literal is in nearly every text and costs a mark each time; what another set implies adds no
 * selectivity.
 */
function strongest(sets: readonly string[][]): string[][] {
	const distinct = new Map<string, string[]>();
	for (const s of sets) distinct.set([...s].sort().join("\u0000"), s);
	const all = [...distinct.values()];
	const implies = (b: readonly string[], a: readonly string[]) => b.every((x) => a.some((y) => x.includes(y)));
	const kept = all.filter(
		(a) => !all.some((b) => b !== a && implies(b, a) && !(implies(a, b) && all.indexOf(b) > all.indexOf(a))),
	);
	const shortest = (s: readonly string[]) => Math.min(...s.map((x) => x.length));
	return kept.sort((a, b) => shortest(b) - shortest(a) || a.length - b.length);
}

let BMP: string | undefined;
const EQUIVALENTS = new Map<string, readonly number[]>();

/** The BMP code units that "iu" matching takes for `ch` (itself first), found by V8's own matching over all of them. */
function equivalents(ch: string): readonly number[] {
	let out = EQUIVALENTS.get(ch);
	if (out !== undefined) return out;
	if (BMP === undefined) {
		const units = new Uint16Array(0x10000 - 0x800);
		for (let c = 0, k = 0; c < 0x10000; c++) if (c < 0xd800 || c > 0xdfff) units[k++] = c;
		BMP = new TextDecoder("utf-16le").decode(units);
	}
	const escaped = `\\u${(ch.charCodeAt(0) as number).toString(16).padStart(4, "0")}`;
	const found = [ch.charCodeAt(0)];
	for (const m of BMP.matchAll(new RegExp(escaped, "giu"))) {
		const c = (m[0] as string).charCodeAt(0);
		if (c !== found[0]) found.push(c);
	}
	out = found;
	EQUIVALENTS.set(ch, out);
	return out;
}
