/**
 * Exact duplicates (the same canonical record) and near-duplicate prompts with conflicting completions — a label flip,
 * or a poisoned copy of a genuine example. Memory is a few dozen bytes per record, in typed arrays.
 *
 * Near-identical prompts are those with the same set of words (lowercased; spacing, punctuation and order drift
 * allowed) whose case-preserving word bigrams mostly agree (MinHash estimate ≥ 0.8): a copy that drifted in spacing
 * or punctuation is one, while two questions about different things ("queue.Full" / "queue.Queue.full",
 * "inspect.signature" / "inspect.Signature") are not. Completions conflict when they are neither the same
 * normalised text nor similar word sets.
 */
import { fmix, hash32, normalize, stem, words } from "./text";

const SIG = 16;
const CSIG = 8;
const SEEDS = Array.from({ length: SIG + CSIG }, (_, i) => fmix(0x27d4eb2f + i * 0x165667b1));
const PROMPT_SIMILAR = 0.8;
const COMPLETION_SIMILAR = 0.5;

class Grow<T extends Int32Array | Uint8Array> {
	data: T;
	constructor(
		private readonly make: (n: number) => T,
		private readonly width: number,
	) {
		this.data = make(1024 * width);
	}
	ensure(records: number): void {
		if (records * this.width <= this.data.length) return;
		const next = this.make(Math.max(records * this.width, this.data.length * 2));
		next.set(this.data);
		this.data = next;
	}
}

function minhash(items: ArrayLike<number>, seedOffset: number, count: number, out: number[]): void {
	for (let j = 0; j < count; j++) out[j] = 0x7fffffff;
	for (let i = 0; i < items.length; i++) {
		const h = items[i] as number;
		for (let j = 0; j < count; j++) {
			const v = fmix(h ^ (SEEDS[seedOffset + j] as number)) & 0x7fffffff;
			if (v < (out[j] as number)) out[j] = v;
		}
	}
}

const CASED_WORD = /[\p{L}\p{N}_']+/gu;

/**
 * Case-preserving word bigrams: one substituted word changes two of them (a different question: "queue.Full" and
 * "queue.Queue.full", "inspect.signature" and "inspect.Signature"), drift in spacing and punctuation none.
 */
function shingles(text: string): number[] {
	const ws = text.match(CASED_WORD) ?? [];
	if (ws.length < 2) return ws.map((w) => hash32(w));
	const out: number[] = [];
	for (let i = 0; i + 1 < ws.length; i++) out.push(hash32(`${ws[i]} ${ws[i + 1]}`));
	return out;
}

export interface ConflictGroup {
	/** records whose prompts are near-duplicates, by completion class, largest class first */
	readonly classes: readonly (readonly number[])[];
	/** one completion of each class, for the message */
	readonly examples: readonly string[];
}

export class DuplicateFinder {
	private n = 0;
	/** hash of the prompt's set of lowercased words; 0: no words, no part in the search */
	private readonly wordSet = new Grow((n) => new Int32Array(n), 1);
	private readonly sig = new Grow((n) => new Uint8Array(n), SIG);
	private readonly csig = new Grow((n) => new Uint8Array(n), CSIG);
	private readonly cfp = new Grow((n) => new Int32Array(n), 1);
	private readonly exact = new Grow((n) => new Int32Array(n), 2);
	private readonly examples = new Map<number, string>();
	private readonly tmp: number[] = [];

	/**
	 * `leaf` is the record's canonical hash (first 8 bytes used); `promptWords` its prompt's word hashes (lowercased,
	 * for rarity); `promptText` the prompt itself, whose case-preserving word bigrams are compared.
	 */
	add(id: number, leaf: Uint8Array, promptWords: Int32Array, promptText: string, completion: string | undefined): void {
		this.n = Math.max(this.n, id + 1);
		for (const g of [this.wordSet, this.sig, this.csig, this.cfp, this.exact]) g.ensure(this.n);
		const view = new DataView(leaf.buffer, leaf.byteOffset, 8);
		this.exact.data[2 * id] = view.getInt32(0);
		this.exact.data[2 * id + 1] = view.getInt32(4);
		let set = 0;
		for (const w of [...promptWords].sort((a, b) => a - b)) set = fmix(Math.imul(set, 31) + w);
		this.wordSet.data[id] = promptWords.length === 0 ? 0 : set || 1;
		minhash(shingles(promptText), 0, SIG, this.tmp);
		for (let j = 0; j < SIG; j++) this.sig.data[id * SIG + j] = (this.tmp[j] as number) & 0xff;
		const c = completion === undefined ? "" : normalize(completion);
		this.cfp.data[id] = hash32(c);
		const cw = [...new Set(words(c).map(stem))].map((w) => hash32(w));
		minhash(cw, SIG, CSIG, this.tmp);
		for (let j = 0; j < CSIG; j++) this.csig.data[id * CSIG + j] = (this.tmp[j] as number) & 0xff;
		if (completion !== undefined && this.examples.size < 1 << 20) this.examples.set(id, completion.slice(0, 200));
	}

	/** Groups of exact duplicates (record indices, ascending), each with more than one record. */
	exactDuplicates(): number[][] {
		const ids = Array.from({ length: this.n }, (_, i) => i);
		const e = this.exact.data;
		ids.sort((a, b) => (e[2 * a] as number) - (e[2 * b] as number) || (e[2 * a + 1] as number) - (e[2 * b + 1] as number) || a - b);
		const groups: number[][] = [];
		for (let i = 0; i < ids.length; ) {
			let j = i + 1;
			const a = ids[i] as number;
			while (j < ids.length && e[2 * (ids[j] as number)] === e[2 * a] && e[2 * (ids[j] as number) + 1] === e[2 * a + 1]) j++;
			if (j - i > 1) groups.push(ids.slice(i, j));
			i = j;
		}
		return groups.sort((x, y) => (x[0] as number) - (y[0] as number));
	}

	private similar(sig: Uint8Array, width: number, a: number, b: number): number {
		let eq = 0;
		for (let j = 0; j < width; j++) if (sig[a * width + j] === sig[b * width + j]) eq++;
		return eq / width;
	}

	private sameCompletion(a: number, b: number): boolean {
		return this.cfp.data[a] === this.cfp.data[b] || this.similar(this.csig.data, CSIG, a, b) >= COMPLETION_SIMILAR;
	}

	/** Near-duplicate prompts whose completions disagree. */
	conflicts(): ConflictGroup[] {
		const parent = new Int32Array(this.n).map((_, i) => i);
		const find = (i: number): number => {
			while (parent[i] !== i) {
				parent[i] = parent[parent[i] as number] as number;
				i = parent[i] as number;
			}
			return i;
		};
		const inPair = new Uint8Array(this.n);
		const set = this.wordSet.data;
		const ids: number[] = [];
		for (let i = 0; i < this.n; i++) if (set[i] !== 0) ids.push(i);
		ids.sort((x, y) => (set[x] as number) - (set[y] as number) || x - y);
		for (let i = 0; i < ids.length; ) {
			let j = i + 1;
			while (j < ids.length && set[ids[j] as number] === set[ids[i] as number]) j++;
			// compare each member with the first few of its group: bounded work in a huge group
			for (let x = i + 1; x < j; x++) {
				for (let y = i; y < Math.min(x, i + 16); y++) {
					const p = ids[x] as number;
					const q = ids[y] as number;
					if (this.similar(this.sig.data, SIG, p, q) >= PROMPT_SIMILAR) {
						parent[find(p)] = find(q);
						inPair[p] = 1;
						inPair[q] = 1;
					}
				}
			}
			i = j;
		}
		const clusters = new Map<number, number[]>();
		for (let i = 0; i < this.n; i++) {
			if (inPair[i] === 0) continue;
			const r = find(i);
			const l = clusters.get(r);
			if (l === undefined) clusters.set(r, [i]);
			else l.push(i);
		}
		const out: ConflictGroup[] = [];
		for (const members of clusters.values()) {
			const classes: number[][] = [];
			for (const id of members) {
				const c = classes.find((cl) => this.sameCompletion(cl[0] as number, id));
				if (c === undefined) classes.push([id]);
				else c.push(id);
			}
			if (classes.length < 2) continue;
			classes.sort((a, b) => b.length - a.length || (a[0] as number) - (b[0] as number));
			out.push({ classes, examples: classes.map((c) => this.examples.get(c[0] as number) ?? "") });
		}
		return out.sort((a, b) => (a.classes[0]?.[0] as number) - (b.classes[0]?.[0] as number));
	}
}
