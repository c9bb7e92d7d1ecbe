/**
 * Exact duplicates (the same canonical record) and near-duplicate prompts with conflicting completions — a label flip,
 * or a poisoned copy of a genuine example. Memory is 4 bytes per record (its prompt's word-set hash) in 64 Ki-record
 * pages, and the signatures' 28 bytes for the first half million; later pages of signatures go to a temporary file,
 * and only the records whose word set is shared are read back. An exact duplicate is the same leaf hash, whose prefix
 * lineage keeps anyway.
 *
 * Near-identical prompts are those with the same set of words (lowercased; spacing, punctuation and order drift
 * allowed) whose case-preserving word bigrams mostly agree (MinHash estimate ≥ 0.8): a copy that drifted in spacing
 * or punctuation is one, while two questions about different things ("queue.Full" / "queue.Queue.full",
 * "inspect.signature" / "inspect.Signature") are not. The signatures are made with the rest of a record's digest
 * (features.ts).
 *
 * A label flip is about short, label-like completions (a class label, yes/no, a few words): those are compared as
 * labels — case, punctuation and spacing set aside, every other difference counts ("positive" / "not positive",
 * "The sentiment is positive." / "The sentiment is negative."). Long free-text completions are the same answer when
 * they are the same normalised text or share most of their words; when they differ, the prompt has several valid
 * answers (a changelog or licence question asked of many packages) — a conflict only when they are opposed (one is
 * the other negated, or they open with opposite verdicts: "Yes, …" / "No, …"), or when a majority of the copies give
 * one answer and a minority another (a poisoned copy of a genuine example).
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DUP_CSIG as CSIG, DUP_SIG as SIG } from "./features";
import { words } from "./text";

/** At most this many words and characters: a label, not free text. */
const LABEL_WORDS = 5;
export const LABEL_CHARS = 48;
/** Share of words (the first 200 characters') two long completions must share to be one answer said twice. */
const SHARED_CONTENT = 0.5;

/** The completion as a label (lowercase, punctuation and spacing set aside), or undefined when it is free text. */
export function labelOf(text: string): string | undefined {
	const t = text.trim();
	if (t.length === 0 || t.length > LABEL_CHARS) return undefined;
	const w = words(t);
	if (w.length === 0 || w.length > LABEL_WORDS) return undefined;
	return w.join(" ");
}

const NEGATION = new Set(
	"not no never none nothing nobody neither nor cannot can't won't don't doesn't didn't isn't aren't wasn't weren't shouldn't wouldn't couldn't mustn't hasn't haven't hadn't n't".split(
		" ",
	),
);
const VERDICTS: Record<string, string> = {
	yes: "yes",
	no: "no",
	true: "yes",
	false: "no",
	correct: "yes",
	incorrect: "no",
	right: "yes",
	wrong: "no",
	valid: "yes",
	invalid: "no",
	positive: "yes",
	negative: "no",
	safe: "yes",
	unsafe: "no",
};

/** Do two completions say opposite things: the same words but for a negation, or opposite opening verdicts? */
export function opposed(a: string, b: string): boolean {
	const wa = words(a);
	const wb = words(b);
	const va = VERDICTS[wa[0] ?? ""];
	const vb = VERDICTS[wb[0] ?? ""];
	if (va !== undefined && vb !== undefined && va !== vb) return true;
	const na = wa.filter((w) => NEGATION.has(w)).length;
	const nb = wb.filter((w) => NEGATION.has(w)).length;
	if (na === nb) return false;
	const rest = (ws: string[]) => ws.filter((w) => !NEGATION.has(w));
	return jaccard(rest(wa), rest(wb)) >= 0.9;
}

function jaccard(a: readonly string[], b: readonly string[]): number {
	const sa = new Set(a);
	const sb = new Set(b);
	if (sa.size === 0 && sb.size === 0) return 1;
	let both = 0;
	for (const w of sa) if (sb.has(w)) both++;
	return both / (sa.size + sb.size - both);
}

/**
 * One label? The same words, or one inside the other with nothing added that could change it: "positive" and "The
 * sentiment is positive." are one label, "positive" and "not positive" (or "positive" and "negative") are not.
 */
export function sameLabel(a: string, b: string): boolean {
	if (a === b) return true;
	const [short, long] = a.length <= b.length ? [a.split(" "), b.split(" ")] : [b.split(" "), a.split(" ")];
	for (let at = 0; at + short.length <= long.length; at++) {
		if (!short.every((w, k) => long[at + k] === w)) continue;
		const added = [...long.slice(0, at), ...long.slice(at + short.length)];
		return !added.some((w) => NEGATION.has(w) || VERDICTS[w] !== undefined || /\d/.test(w));
	}
	return false;
}

/** Are two completions one answer? Labels by their label; free text by its text or most of its words. */
export function sameAnswer(a: string, b: string): boolean {
	const la = labelOf(a);
	const lb = labelOf(b);
	if (la !== undefined && lb !== undefined) return sameLabel(la, lb);
	if (opposed(a, b)) return false;
	// a label and the free text that opens with it ("Yes." / "Yes, because …")
	if (la !== undefined && words(b).slice(0, la.split(" ").length).join(" ") === la) return true;
	if (lb !== undefined && words(a).slice(0, lb.split(" ").length).join(" ") === lb) return true;
	return jaccard(words(a), words(b)) >= SHARED_CONTENT;
}

/**
 * Do the answer classes of near-identical prompts disagree the way a flip does? Two labels, opposed texts, or a
 * majority of the copies against the rest; otherwise they are several valid answers to one question.
 */
export function disagree(classes: readonly (readonly number[])[], examples: readonly (string | undefined)[]): boolean {
	for (let i = 0; i < classes.length; i++) {
		for (let j = i + 1; j < classes.length; j++) {
			const a = examples[i];
			const b = examples[j];
			if (a === undefined || b === undefined) return true;
			if ((labelOf(a) !== undefined && labelOf(b) !== undefined) || opposed(a, b)) return true;
		}
	}
	const total = classes.reduce((n, c) => n + c.length, 0);
	const largest = classes[0]?.length ?? 0;
	return largest >= 2 && largest * 2 > total;
}

const PROMPT_SIMILAR = 0.8;
const KEPT_COMPLETIONS = 1 << 16;
/** how much of a completion judging a conflict and naming it reads */
export const EXAMPLE_CHARS = 200;
const COMPLETION_SIMILAR = 0.5;
const PAGE_BITS = 16;
const PAGE = 1 << PAGE_BITS;
const MASK = PAGE - 1;

/** Where each record's leaf-hash prefix is: 64 Ki-record pages of 8 bytes per record (lineage's). */
export interface ExactKeys {
	readonly count: number;
	page(p: number): Uint8Array;
}

export interface ConflictGroup {
	/** records whose prompts are near-duplicates, by completion class, largest class first */
	readonly classes: readonly (readonly number[])[];
	/** one completion of each class, for the message */
	readonly examples: readonly string[];
}

/** 64 Ki records: their prompts' word-set hashes, and their signatures (undefined once written to the spill file) */
interface Page {
	readonly wordSet: Int32Array;
	sigs: Uint8Array | undefined;
}

/** A record's signatures: its normalised completion's hash (4 bytes), its question's MinHash, its completion's. */
const REC = 4 + SIG + CSIG;
/** signature pages kept in memory before later ones are written to a temporary file (half a million records) */
const MEMORY_PAGES = 8;

/**
 * The signature pages that left memory, in one temporary file (28 bytes a record: 280 MB at 10^7 records, which need
 * not be in memory — only the records whose prompts share a word set with another are read back).
 */
class SpillFile {
	private dir: string | undefined;
	private fd = -1;

	write(page: number, bytes: Uint8Array): void {
		if (this.fd < 0) {
			this.dir = mkdtempSync(join(tmpdir(), "ftguard-spill-"));
			this.fd = openSync(join(this.dir, "signatures"), "w+");
		}
		let done = 0;
		while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, page * PAGE * REC + done);
	}

	read(page: number, into: Uint8Array): void {
		let done = 0;
		while (done < into.length) {
			const n = readSync(this.fd, into, done, into.length - done, page * PAGE * REC + done);
			if (n === 0) throw new Error(`signature spill file: page ${page} is short`);
			done += n;
		}
	}

	close(): void {
		if (this.fd >= 0) closeSync(this.fd);
		this.fd = -1;
		if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
		this.dir = undefined;
	}
}

/**
 * The first completions (their first 200 characters), for judging and naming conflicting duplicates: as UTF-8 in
 * 1 MiB pages, outside the JS heap (a million strings there cost memory and every collection's time). A text that
 * would not come back the same (an unpaired surrogate) is kept as it is.
 */
class Examples {
	private readonly ids: number[] = [];
	private readonly at: number[] = [];
	private readonly pages: Buffer[] = [];
	private used = 1 << 20;
	private readonly odd = new Map<number, string>();

	get size(): number {
		return this.ids.length;
	}

	has(id: number): boolean {
		return this.find(id) >= 0;
	}

	add(id: number, text: string): void {
		// (String.prototype.isWellFormed: in Node 20, newer than the TypeScript library target)
		if (!(text as unknown as { isWellFormed(): boolean }).isWellFormed()) {
			this.odd.set(id, text);
			this.ids.push(id);
			this.at.push(-1);
			return;
		}
		const n = Buffer.byteLength(text);
		if (this.used + n > 1 << 20) {
			this.pages.push(Buffer.allocUnsafe(1 << 20));
			this.used = 0;
		}
		const page = this.pages.length - 1;
		(this.pages[page] as Buffer).write(text, this.used, "utf8");
		this.ids.push(id);
		// page, offset and length in one number (pages of 2^20 bytes, texts under 2^10)
		this.at.push(page * 2 ** 30 + this.used * 2 ** 10 + n);
		this.used += n;
	}

	get(id: number): string | undefined {
		const k = this.find(id);
		if (k < 0) return undefined;
		const a = this.at[k] as number;
		if (a < 0) return this.odd.get(id);
		const page = Math.floor(a / 2 ** 30);
		const off = Math.floor(a / 2 ** 10) % 2 ** 20;
		return (this.pages[page] as Buffer).toString("utf8", off, off + (a % 2 ** 10));
	}

	/** where record `id`'s text is in `ids`, or -1 */
	private find(id: number): number {
		let lo = 0;
		let hi = this.ids.length - 1;
		while (lo <= hi) {
			const mid = (lo + hi) >> 1;
			const x = this.ids[mid] as number;
			if (x === id) return mid;
			if (x < id) lo = mid + 1;
			else hi = mid - 1;
		}
		return -1;
	}
}

export class DuplicateFinder {
	/**
	 * `keep`: how many completions are kept for judging and naming conflicts; those of later records in a conflict are
	 * read again at the end (a few MB here instead of ~150 bytes a record: 1.5 GB at 10^7 records).
	 */
	constructor(
		private readonly keep = KEPT_COMPLETIONS,
		/** signature pages kept in memory; later ones go to a temporary file as they fill */
		private readonly memoryPages = MEMORY_PAGES,
	) {}

	private n = 0;
	private readonly pages: Page[] = [];
	private readonly spill = new SpillFile();
	/** signatures read back from the spill file: records (ascending) and their bytes */
	private loadedIds = new Int32Array(0);
	private loaded = new Uint8Array(0);
	private readonly examples = new Examples();
	/** records whose exact key is zero, not their leaf: records that did not parse */
	private readonly unparsed = new Set<number>();

	private page(id: number): Page {
		const p = id >>> PAGE_BITS;
		while (this.pages.length <= p) {
			// records come in order: the page before is full, and may leave memory
			const full = this.pages.length - 1;
			const last = this.pages[full];
			if (last?.sigs !== undefined && full >= this.memoryPages) {
				this.spill.write(full, last.sigs);
				last.sigs = undefined;
			}
			this.pages.push({ wordSet: new Int32Array(PAGE), sigs: new Uint8Array(PAGE * REC) });
		}
		return this.pages[p] as Page;
	}

	/** Where record `id`'s signatures are: bytes and offset (in memory, or read back by `load`). */
	private rec(id: number): [Uint8Array, number] {
		const sigs = (this.pages[id >>> PAGE_BITS] as Page).sigs;
		if (sigs !== undefined) return [sigs, (id & MASK) * REC];
		let lo = 0;
		let hi = this.loadedIds.length - 1;
		while (lo <= hi) {
			const mid = (lo + hi) >> 1;
			const x = this.loadedIds[mid] as number;
			if (x === id) return [this.loaded, mid * REC];
			if (x < id) lo = mid + 1;
			else hi = mid - 1;
		}
		throw new Error(`duplicate finder: the signatures of record ${id} were not read back`);
	}

	private cfpOf(id: number): number {
		const [b, o] = this.rec(id);
		return (b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24);
	}

	/** Read back the signatures of `ids` (ascending) whose pages left memory, one page read at a time. */
	private load(ids: Int32Array): void {
		const wanted = ids.filter((id) => (this.pages[id >>> PAGE_BITS] as Page).sigs === undefined);
		this.loadedIds = wanted;
		this.loaded = new Uint8Array(wanted.length * REC);
		const page = new Uint8Array(PAGE * REC);
		let read = -1;
		wanted.forEach((id, k) => {
			const p = id >>> PAGE_BITS;
			if (p !== read) {
				this.spill.read(p, page);
				read = p;
			}
			this.loaded.set(page.subarray((id & MASK) * REC, (id & MASK) * REC + REC), k * REC);
		});
	}

	/** Remove the spill file. */
	close(): void {
		this.spill.close();
	}

	/**
	 * Record `id`'s signatures: `wordSet` the hash of its prompt's word set (0: no words, no part in the search), `sig`
	 * and `csig` the MinHashes of its question and completion, `cfp` the hash of the normalised completion.
	 */
	add(
		id: number,
		wordSet: number,
		sig: Uint8Array,
		cfp: number,
		csig: Uint8Array,
		completion: string | undefined,
	): void {
		this.n = Math.max(this.n, id + 1);
		const p = this.page(id);
		const i = id & MASK;
		p.wordSet[i] = wordSet;
		const b = p.sigs as Uint8Array;
		const o = i * REC;
		b[o] = cfp & 0xff;
		b[o + 1] = (cfp >>> 8) & 0xff;
		b[o + 2] = (cfp >>> 16) & 0xff;
		b[o + 3] = cfp >>> 24;
		b.set(sig, o + 4);
		b.set(csig, o + 4 + SIG);
		if (completion !== undefined && this.examples.size < this.keep)
			this.examples.add(id, completion.slice(0, EXAMPLE_CHARS));
	}

	/** A record that did not parse: no signatures, and an exact key of zero. */
	addUnparsed(id: number, sig: Uint8Array, cfp: number, csig: Uint8Array): void {
		this.add(id, 0, sig, cfp, csig, undefined);
		this.unparsed.add(id);
	}

	/**
	 * Groups of exact duplicates (record indices, ascending), each with more than one record, ordered by first record.
	 * One pass with an open-addressing table of first occurrences keyed by the leaf prefix.
	 */
	exactDuplicates(keys: ExactKeys): number[][] {
		const n = Math.min(this.n, keys.count);
		// at most 2/3 full: short probes, and 64 MB at 10^7 records
		let size = 1024;
		while (size * 2 < n * 3) size *= 2;
		const table = new Int32Array(size); // first record with a key, + 1
		const mask = size - 1;
		const views: Int32Array[] = [];
		const keyOf = (id: number, half: number): number => {
			if (this.unparsed.has(id)) return 0;
			const p = id >>> PAGE_BITS;
			let v = views[p];
			if (v === undefined) {
				const b = keys.page(p);
				v = new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
				views[p] = v;
			}
			return v[2 * (id & MASK) + half] as number;
		};
		const groups = new Map<number, number[]>();
		for (let id = 0; id < n; id++) {
			// two lines that did not parse are not copies of each other
			if (this.unparsed.has(id)) continue;
			const a = keyOf(id, 0);
			const b = keyOf(id, 1);
			let slot = (b ^ Math.imul(a, 0x9e3779b1)) & mask;
			for (;;) {
				const first = (table[slot] as number) - 1;
				if (first < 0) {
					table[slot] = id + 1;
					break;
				}
				if (keyOf(first, 0) === a && keyOf(first, 1) === b) {
					const g = groups.get(first);
					if (g === undefined) groups.set(first, [first, id]);
					else g.push(id);
					break;
				}
				slot = (slot + 1) & mask;
			}
		}
		return [...groups.values()].sort((x, y) => (x[0] as number) - (y[0] as number));
	}

	private similarSig(a: number, b: number): number {
		const [ba, oa] = this.rec(a);
		const [bb, ob] = this.rec(b);
		let eq = 0;
		for (let j = 4; j < 4 + SIG; j++) if (ba[oa + j] === bb[ob + j]) eq++;
		return eq / SIG;
	}

	/** One answer? By their texts when both are known, else by the signatures. */
	private sameCompletion(a: number, b: number, text: ReadonlyMap<number, string | undefined>): boolean {
		const ta = text.get(a);
		const tb = text.get(b);
		if (ta !== undefined && tb !== undefined) {
			const la = labelOf(ta);
			const lb = labelOf(tb);
			if (la !== undefined && lb !== undefined) return sameLabel(la, lb);
			if (opposed(ta, tb)) return false;
			if (this.cfpOf(a) === this.cfpOf(b) || sameAnswer(ta, tb)) return true;
		} else if (this.cfpOf(a) === this.cfpOf(b)) return true;
		const [ba, oa] = this.rec(a);
		const [bb, ob] = this.rec(b);
		let eq = 0;
		for (let j = 4 + SIG; j < REC; j++) if (ba[oa + j] === bb[ob + j]) eq++;
		return eq / CSIG >= COMPLETION_SIMILAR;
	}

	private wordSetOf(id: number): number {
		return (this.pages[id >>> PAGE_BITS] as Page).wordSet[id & MASK] as number;
	}

	/** Records whose prompts are near-duplicates of one another: clusters of two or more, members ascending. */
	clusters(): number[][] {
		// only records whose prompt shares its word set with another can be in a cluster: their signatures are read
		// back, and the union-find runs over them alone
		const grouped = this.sharedWordSets();
		this.load(Int32Array.from(grouped).sort());
		const parent = new Int32Array(grouped.length);
		for (let i = 0; i < parent.length; i++) parent[i] = i;
		const find = (i: number): number => {
			while (parent[i] !== i) {
				parent[i] = parent[parent[i] as number] as number;
				i = parent[i] as number;
			}
			return i;
		};
		const inPair = new Uint8Array(grouped.length);
		for (let i = 0; i < grouped.length; ) {
			const set = this.wordSetOf(grouped[i] as number);
			let j = i + 1;
			while (j < grouped.length && this.wordSetOf(grouped[j] as number) === set) j++;
			// compare each member with the first few of its group: bounded work in a huge group
			for (let x = i + 1; x < j; x++) {
				for (let y = i; y < Math.min(x, i + 16); y++) {
					if (this.similarSig(grouped[x] as number, grouped[y] as number) >= PROMPT_SIMILAR) {
						parent[find(x)] = find(y);
						inPair[x] = 1;
						inPair[y] = 1;
					}
				}
			}
			i = j;
		}
		const clusters = new Map<number, number[]>();
		for (let k = 0; k < grouped.length; k++) {
			if (inPair[k] === 0) continue;
			const r = find(k);
			const l = clusters.get(r);
			if (l === undefined) clusters.set(r, [grouped[k] as number]);
			else l.push(grouped[k] as number);
		}
		for (const c of clusters.values()) c.sort((a, b) => a - b);
		return [...clusters.values()];
	}

	/** The records whose prompt's word set another record's has too, grouped by word set (ascending in a group). */
	private sharedWordSets(): Int32Array {
		const ids = this.byWordSet();
		let n = 0;
		for (let i = 0; i < ids.length; ) {
			const set = this.wordSetOf(ids[i] as number);
			let j = i + 1;
			while (j < ids.length && this.wordSetOf(ids[j] as number) === set) j++;
			if (j - i > 1) for (let k = i; k < j; k++) ids[n++] = ids[k] as number;
			i = j;
		}
		return ids.slice(0, n);
	}

	/** The members of `clusters` whose completion text is not kept here (past `keep`): the caller reads them again. */
	missingTexts(clusters: readonly (readonly number[])[]): number[] {
		const out: number[] = [];
		for (const c of clusters) for (const id of c) if (!this.unparsed.has(id) && !this.examples.has(id)) out.push(id);
		return out.sort((a, b) => a - b);
	}

	/**
	 * The clusters whose completions disagree. `more`: the completions (first 200 characters) of the members whose
	 * text is not kept here, read again by the caller; a member with neither is judged by its signatures.
	 */
	conflicts(clusters: readonly (readonly number[])[], more: ReadonlyMap<number, string> = new Map()): ConflictGroup[] {
		const out: ConflictGroup[] = [];
		for (const members of clusters) {
			const classes: number[][] = [];
			const text = new Map(members.map((id) => [id, this.examples.get(id) ?? more.get(id)]));
			for (const id of members) {
				const c = classes.find((cl) => this.sameCompletion(cl[0] as number, id, text));
				if (c === undefined) classes.push([id]);
				else c.push(id);
			}
			if (classes.length < 2) continue;
			classes.sort((a, b) => b.length - a.length || (a[0] as number) - (b[0] as number));
			const examples = classes.map((c) => text.get(c[0] as number));
			if (!disagree(classes, examples)) continue;
			out.push({ classes, examples: examples.map((e) => e ?? "") });
		}
		return out.sort((a, b) => (a.classes[0]?.[0] as number) - (b.classes[0]?.[0] as number));
	}

	/**
	 * The records with words, grouped by word-set hash and ascending within a group: a stable radix sort (two 16-bit
	 * digits), linear where a comparison sort of millions of records takes seconds. Which order the groups come in does
	 * not matter: the union-find's clusters are the same.
	 */
	private byWordSet(): Int32Array {
		let count = 0;
		for (let i = 0; i < this.n; i++) if (this.wordSetOf(i) !== 0) count++;
		let ids = new Int32Array(count);
		let k = 0;
		for (let i = 0; i < this.n; i++) if (this.wordSetOf(i) !== 0) ids[k++] = i;
		let tmp = new Int32Array(count);
		const counts = new Int32Array(1 << 16);
		for (const shift of [0, 16]) {
			counts.fill(0);
			for (let i = 0; i < count; i++) (counts[(this.wordSetOf(ids[i] as number) >>> shift) & 0xffff] as number)++;
			let sum = 0;
			for (let d = 0; d < 1 << 16; d++) {
				const c = counts[d] as number;
				counts[d] = sum;
				sum += c;
			}
			for (let i = 0; i < count; i++) {
				const id = ids[i] as number;
				const d = (this.wordSetOf(id) >>> shift) & 0xffff;
				tmp[counts[d] as number] = id;
				counts[d] = (counts[d] as number) + 1;
			}
			[ids, tmp] = [tmp, ids];
		}
		return ids;
	}
}
