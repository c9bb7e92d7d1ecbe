/**
 * Novel words spreading (docs/monitor.md, "Word bursts"): a word this version's outputs rarely used, absent from the
 * requests that produced them, suddenly present in many outputs that are otherwise different. A backdoor whose
 * payload varies per firing (the user's name in it, synonyms, sentences shuffled) escapes near-duplicate matching,
 * but a payload with a purpose keeps something: a URL domain, a phone number, "password". Repetition needs repeats;
 * this needs only a shared word.
 *
 * Memory is bounded whatever the traffic: a table of at most TERM_CAPACITY words with exponentially decayed counts
 * (half-life half a window, so "recent" means about one window), pruned by lossy counting — when the table is full
 * the less frequent half is dropped, and the level it was cut at becomes the floor below which an untracked word's
 * history is assumed to lie. A word often in outputs stays; a singleton goes. A dropped word's count and history are
 * kept in a smaller direct-mapped cache and given back when it returns: long answers (hundreds of distinct words each)
 * churn the table faster than a steady word recurs, and a steady word coming back with no history would look new.
 * Words the request itself contained
 * are skipped: an answer naturally repeats what it was asked about, so topic drift in the questions is not novelty.
 */
import { foldText, newTokens, type Tokens, tokenize } from "./text";

export const TERM_CAPACITY = 2048;
/** words of one record considered (its first ones: the payload of a short varied output is all of it) */
const TERM_WORDS = 256;
const MAX_RISING = 16;
const RISING_WEIGHT = 1 / 8;
const INDEX_SIZE = 2 * TERM_CAPACITY;
const INDEX_MASK = INDEX_SIZE - 1;
/** retired words remembered (direct-mapped by hash, the larger count kept on a collision) */
const RETIRED_SIZE = 4096;
const RETIRED_MASK = RETIRED_SIZE - 1;

/** The lower median of `a` (reordered in place): Hoare's selection, linear on average. */
function median(a: Float64Array): number {
	const k = (a.length - 1) >> 1;
	let lo = 0;
	let hi = a.length - 1;
	while (lo < hi) {
		const pivot = a[(lo + hi) >> 1] as number;
		let i = lo;
		let j = hi;
		while (i <= j) {
			while ((a[i] as number) < pivot) i++;
			while ((a[j] as number) > pivot) j--;
			if (i <= j) {
				const t = a[i] as number;
				a[i] = a[j] as number;
				a[j] = t;
				i++;
				j--;
			}
		}
		if (k <= j) hi = j;
		else if (k >= i) lo = i;
		else break;
	}
	return a[k] as number;
}
const F_RISING = 1;
const F_ALARMED = 2;
/** the growth factor's exponent is re-based before it loses precision */
const REBASE_AT = 2 ** 40;

/** A set of 32-bit word hashes, emptied in O(1) (generation stamps), for ≤ 512 words per record. */
export class StampSet {
	private keys = new Uint32Array(1024);
	private stamps = new Uint32Array(1024);
	private gen = 1;
	clear(): void {
		if (++this.gen === 0xffffffff) {
			this.stamps.fill(0);
			this.gen = 1;
		}
	}
	/** adds `h`; true when it was not there */
	add(h: number): boolean {
		let i = h & 1023;
		for (;;) {
			if (this.stamps[i] !== this.gen) {
				this.stamps[i] = this.gen;
				this.keys[i] = h;
				return true;
			}
			if (this.keys[i] === h) return false;
			i = (i + 1) & 1023;
		}
	}
	has(h: number): boolean {
		let i = h & 1023;
		for (;;) {
			if (this.stamps[i] !== this.gen) return false;
			if (this.keys[i] === h) return true;
			i = (i + 1) & 1023;
		}
	}
}

/** Whether the rising word's outputs are essentially one output (≥ 80% in one cluster, by the vote's margin). */
export const oneOutput = (r: RisingWord): boolean => r.vote >= 0.6 * r.outputs;

/** What is kept of a word that is rising (for the alarm's evidence): its text, one output, the inputs behind it. */
export interface RisingWord {
	hash: number;
	text: string | null;
	output: string | null;
	/** rising words in the record `output` came from: the example shown is one carrying the most of them (a payload
	 * carries its several new words; an ordinary answer that happens to hold one of them, one) */
	outputWords: number;
	samples: string[];
	sampleNext: number;
	/** the majority vote (Boyer–Moore) over the output clusters of its outputs: the candidate and its margin; a margin
	 * of at least 0.6 × outputs means some cluster may hold ≥ 80% of them, and then it is this one */
	cluster: number;
	vote: number;
	outputs: number;
}

export interface WordBurst {
	words: { word: string | null; share: number; history: number }[];
	rising: RisingWord[];
}

export interface TermState {
	size: number;
	/** base64 of Uint32Array / Float32Array / Float64Array / Uint8Array, `size` entries each */
	hashes: string;
	counts: string;
	history: string;
	flags: string;
	/** the retired-word cache: RETIRED_SIZE entries each (absent in states written before it existed) */
	retiredHashes?: string;
	retiredCounts?: string;
	retiredHistory?: string;
	effective: number;
	growth: number;
	floorShare: number;
	active: boolean;
	rising: RisingWord[];
}

const b64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
function fromB64<T extends Uint32Array | Float32Array | Float64Array | Uint8Array>(
	s: string,
	make: (buf: ArrayBuffer) => T,
	size: number,
	into: T,
): void {
	const b = Buffer.from(s, "base64");
	const copy = new ArrayBuffer(b.byteLength);
	new Uint8Array(copy).set(b);
	into.set(make(copy).subarray(0, size));
}

export class TermTable {
	private hashes = new Uint32Array(TERM_CAPACITY);
	/** decayed counts times `growth`: adding 1 now is adding `growth`, so decay costs nothing per word */
	private counts = new Float64Array(TERM_CAPACITY);
	/** exponentially weighted share at past checks */
	private history = new Float32Array(TERM_CAPACITY);
	private flags = new Uint8Array(TERM_CAPACITY);
	/** dropped words: hash, count (the table's units), history; count 0 is an empty entry */
	private retiredHashes = new Uint32Array(RETIRED_SIZE);
	private retiredCounts = new Float32Array(RETIRED_SIZE);
	private retiredHistory = new Float32Array(RETIRED_SIZE);
	/** the record that last counted the word (a word counts once per record) */
	private stamps = new Uint32Array(TERM_CAPACITY);
	private seq = 0;
	private size = 0;
	/** open addressing, hash → slot + 1 (0: empty), rebuilt at each prune; half full at most */
	private index = new Int32Array(INDEX_SIZE);
	private growth = 1;
	private readonly step: number;
	/** decayed number of records (the share's denominator) */
	private effective = 0;
	/** share below which an untracked word lies (the last prune's cut) */
	private floorShare = 0;
	private rising = new Map<number, RisingWord>();
	/** a word alarm stands (some alarmed word is still above half the minimum share) */
	private active = false;

	constructor(halfLifeRecords: number) {
		this.step = 2 ** (1 / halfLifeRecords);
	}

	/**
	 * Counts the record's distinct output words that its input does not hold. Returns the rising words it carries,
	 * for the caller to sample (their text, the output, the input); usually none.
	 */
	observe(out: Tokens, input: StampSet): RisingWord[] | undefined {
		this.growth *= this.step;
		if (this.growth > REBASE_AT) this.rebase();
		this.effective = this.effective / this.step + 1;
		const g = this.growth;
		const seq = ++this.seq >>> 0;
		const { counts, stamps } = this;
		let hits: RisingWord[] | undefined;
		const n = Math.min(out.count, TERM_WORDS);
		for (let i = 0; i < n; i++) {
			const h = out.words[i] as number;
			let slot = this.find(h);
			if (slot >= 0 && stamps[slot] === seq) continue;
			if (input.has(h)) continue;
			if (slot < 0) {
				if (this.size === TERM_CAPACITY) this.prune();
				slot = this.size++;
				this.hashes[slot] = h;
				const r = h & RETIRED_MASK;
				if (this.retiredHashes[r] === h && (this.retiredCounts[r] as number) > 0) {
					counts[slot] = this.retiredCounts[r] as number;
					this.history[slot] = this.retiredHistory[r] as number;
					this.retiredCounts[r] = 0;
				} else {
					counts[slot] = 0;
					this.history[slot] = 0;
				}
				this.flags[slot] = 0;
				this.insert(h, slot);
			}
			stamps[slot] = seq;
			counts[slot] = (counts[slot] as number) + g;
			if (((this.flags[slot] as number) & F_RISING) !== 0) {
				const r = this.rising.get(h);
				if (r !== undefined) {
					if (hits === undefined) hits = [];
					hits.push(r);
				}
			}
		}
		return hits;
	}

	/** The word's slot, or -1. */
	private find(h: number): number {
		const { index, hashes } = this;
		for (let i = h & INDEX_MASK; ; i = (i + 1) & INDEX_MASK) {
			const e = index[i] as number;
			if (e === 0) return -1;
			if (hashes[e - 1] === h) return e - 1;
		}
	}

	private insert(h: number, slot: number): void {
		const { index } = this;
		let i = h & INDEX_MASK;
		while (index[i] !== 0) i = (i + 1) & INDEX_MASK;
		index[i] = slot + 1;
	}

	/** Words tracked now (≤ TERM_CAPACITY). */
	get tracked(): number {
		return this.size;
	}

	/** The recent share of the word hashing to `h` (0 when untracked). */
	shareOf(h: number): number {
		const slot = this.find(h);
		return slot < 0 ? 0 : this.share(slot);
	}

	/** The word's share of recent outputs. */
	private share(slot: number): number {
		return this.effective > 0 ? (this.counts[slot] as number) / this.growth / this.effective : 0;
	}

	private rebase(): void {
		for (let i = 0; i < this.size; i++) this.counts[i] = (this.counts[i] as number) / this.growth;
		for (let i = 0; i < RETIRED_SIZE; i++) this.retiredCounts[i] = (this.retiredCounts[i] as number) / this.growth;
		this.growth = 1;
	}

	/** Lossy counting: drops the less frequent half (never a rising or alarmed word) and remembers the cut. */
	private prune(): void {
		const n = this.size;
		const cur = this.counts.subarray(0, n);
		const cut = n > 0 ? median(Float64Array.from(cur)) : 0;
		const keep = new Uint8Array(n);
		let kept = 0;
		for (let i = 0; i < n; i++)
			if ((cur[i] as number) > cut || (this.flags[i] as number) !== 0) {
				keep[i] = 1;
				kept++;
			}
		// counts all equal (a burst of new words): the newest half goes
		for (let i = n - 1; i >= 0 && kept > n >> 1; i--)
			if (keep[i] === 1 && (this.flags[i] as number) === 0) {
				keep[i] = 0;
				kept--;
			}
		let j = 0;
		this.index.fill(0);
		for (let i = 0; i < n; i++) {
			if (keep[i] === 0) {
				this.retire(i);
				continue;
			}
			this.hashes[j] = this.hashes[i] as number;
			this.counts[j] = this.counts[i] as number;
			this.history[j] = this.history[i] as number;
			this.flags[j] = this.flags[i] as number;
			this.stamps[j] = this.stamps[i] as number;
			this.insert(this.hashes[j] as number, j);
			j++;
		}
		this.size = j;
		this.floorShare = this.effective > 0 ? cut / this.growth / this.effective : 0;
	}

	/** Remembers a dropped word, unless its cache entry holds another word with a larger count. */
	private retire(slot: number): void {
		const h = this.hashes[slot] as number;
		const c = this.counts[slot] as number;
		const r = h & RETIRED_MASK;
		if (this.retiredHashes[r] !== h && (this.retiredCounts[r] as number) >= c) return;
		this.retiredHashes[r] = h;
		this.retiredCounts[r] = c;
		this.retiredHistory[r] = this.history[slot] as number;
	}

	/**
	 * The periodic judgement: each word's recent share against its history (max with the floor below which it was
	 * untracked, and 1/window). Returns the words that burst now — share ≥ minShare and ≥ factor × history — unless
	 * `accept` (the caller's further judgement of the word's evidence) refuses them.
	 */
	check(opts: {
		weight: number;
		/** the EWMA's bias correction (1 − (1 − weight)^checks): a word tracked from the start has its real share as
		 * history, one that entered later the zeros of the checks before it */
		correction: number;
		armed: boolean;
		minShare: number;
		factor: number;
		floor: number;
		accept: (r: RisingWord, share: number, history: number) => boolean;
	}): WordBurst | undefined {
		const { weight, correction, armed, minShare, factor } = opts;
		const floor = Math.max(opts.floor, this.floorShare);
		let burst: WordBurst | undefined;
		let anyAlarmed = false;
		const wasActive = this.active;
		const standing = wasActive ? this.alarmedWords() : [];
		const { counts, history, flags } = this;
		const inv = this.effective > 0 ? 1 / (this.growth * this.effective) : 0;
		const half = minShare / 2;
		for (let i = 0; i < this.size; i++) {
			const share = (counts[i] as number) * inv;
			let f = flags[i] as number;
			const past = (history[i] as number) / correction;
			// the common case, a word under half the minimum share and not flagged: only its history moves
			if (f === 0 && share < half) {
				history[i] = (history[i] as number) + weight * (share - (history[i] as number));
				continue;
			}
			const hist = Math.max(past, floor);
			const h = this.hashes[i] as number;
			if ((f & F_ALARMED) !== 0 && share < half) f &= ~F_ALARMED;
			const risingNow = armed && share >= half && share >= (factor / 2) * hist;
			if (risingNow && (f & F_RISING) === 0 && this.rising.size >= MAX_RISING)
				this.yieldRising(share / hist, inv, correction, floor);
			if (risingNow && (f & F_RISING) === 0 && this.rising.size < MAX_RISING) {
				f |= F_RISING;
				this.rising.set(h, {
					hash: h,
					text: null,
					output: null,
					outputWords: 0,
					samples: [],
					sampleNext: 0,
					cluster: 0,
					vote: 0,
					outputs: 0,
				});
			} else if (!risingNow && (f & F_RISING) !== 0 && (f & F_ALARMED) === 0) {
				f &= ~F_RISING;
				this.rising.delete(h);
			}
			if (armed && (f & F_ALARMED) === 0 && share >= minShare && share >= factor * hist) {
				const r = this.rising.get(h);
				// judged once a few of its outputs were seen since it started rising (its text, its inputs, its cluster)
				if (r !== undefined && r.outputs >= 3 && opts.accept(r, share, hist)) {
					f |= F_ALARMED;
					burst ??= { words: [], rising: [] };
					burst.words.push({ word: r.text, share, history: past });
					burst.rising.push(r);
				}
			}
			if ((f & F_ALARMED) !== 0) anyAlarmed = true;
			flags[i] = f;
			// a rising word teaches its history little (RISING_WEIGHT): the rise must not become its own baseline before
			// it is judged; a lasting change is still learned, more slowly
			const wt = (f & F_RISING) !== 0 ? weight * RISING_WEIGHT : weight;
			history[i] = (history[i] as number) + wt * (share - (history[i] as number));
		}
		this.active = anyAlarmed;
		if (burst === undefined) return undefined;
		// while a word alarm stands, words rising with it are the same event (flagged, not alarmed again); words that
		// share no output with it are another (a payload after a product launch's words alarmed)
		if (wasActive) burst = unrelated(burst, standing);
		if (burst === undefined) return undefined;
		burst.words.sort((a, b) => b.share - a.share);
		return burst;
	}

	/** The rising words that alarmed and still stand. */
	private alarmedWords(): RisingWord[] {
		return [...this.rising.values()].filter((r) => {
			const slot = this.find(r.hash);
			return slot >= 0 && ((this.flags[slot] as number) & F_ALARMED) !== 0;
		});
	}

	/**
	 * With every rising slot taken, the weakest rising word that has not alarmed (lowest share / history) gives its
	 * slot up to a stronger newcomer: else words rising first — decoys an attacker spreads ahead of a payload — would
	 * keep the payload's words from ever being watched.
	 */
	private yieldRising(ratio: number, inv: number, correction: number, floor: number): void {
		let weakest = -1;
		let lowest = ratio;
		for (const h of this.rising.keys()) {
			const slot = this.find(h);
			if (slot < 0 || ((this.flags[slot] as number) & F_ALARMED) !== 0) continue;
			const hist = Math.max((this.history[slot] as number) / correction, floor);
			const r = ((this.counts[slot] as number) * inv) / hist;
			if (r < lowest) {
				lowest = r;
				weakest = slot;
			}
		}
		if (weakest < 0) return;
		this.flags[weakest] = (this.flags[weakest] as number) & ~F_RISING;
		this.rising.delete(this.hashes[weakest] as number);
	}

	snapshot(): TermState {
		return {
			size: this.size,
			hashes: b64(this.hashes.subarray(0, this.size)),
			counts: b64(this.counts.subarray(0, this.size)),
			history: b64(this.history.subarray(0, this.size)),
			flags: b64(this.flags.subarray(0, this.size)),
			retiredHashes: b64(this.retiredHashes),
			retiredCounts: b64(this.retiredCounts),
			retiredHistory: b64(this.retiredHistory),
			growth: this.growth,
			effective: this.effective,
			floorShare: this.floorShare,
			active: this.active,
			rising: [...this.rising.values()].map((r) => ({ ...r, samples: [...r.samples] })),
		};
	}

	static restore(s: TermState, halfLifeRecords: number): TermTable {
		const t = new TermTable(halfLifeRecords);
		const size = Math.min(s.size, TERM_CAPACITY);
		t.size = size;
		fromB64(s.hashes, (b) => new Uint32Array(b), size, t.hashes);
		fromB64(s.counts, (b) => new Float64Array(b), size, t.counts);
		fromB64(s.history, (b) => new Float32Array(b), size, t.history);
		fromB64(s.flags, (b) => new Uint8Array(b), size, t.flags);
		for (let i = 0; i < size; i++) t.insert(t.hashes[i] as number, i);
		if (s.retiredHashes !== undefined && s.retiredCounts !== undefined && s.retiredHistory !== undefined) {
			fromB64(s.retiredHashes, (b) => new Uint32Array(b), RETIRED_SIZE, t.retiredHashes);
			fromB64(s.retiredCounts, (b) => new Float32Array(b), RETIRED_SIZE, t.retiredCounts);
			fromB64(s.retiredHistory, (b) => new Float32Array(b), RETIRED_SIZE, t.retiredHistory);
		}
		t.growth = s.growth;
		t.effective = s.effective;
		t.floorShare = s.floorShare;
		t.active = s.active;
		for (const r of s.rising) t.rising.set(r.hash, { ...r, samples: [...r.samples] });
		return t;
	}
}

const scratch = newTokens();
/** The word hashes of a rising word's example output. */
function exampleWords(r: RisingWord): Set<number> {
	if (r.output === null) return new Set([r.hash]);
	tokenize(foldText(r.output), scratch);
	return new Set([r.hash, ...scratch.words.subarray(0, scratch.count)]);
}

/** The part of `burst` whose words and example outputs share no word with the standing alarm's, if any. */
function unrelated(burst: WordBurst, standing: readonly RisingWord[]): WordBurst | undefined {
	const old = new Set<number>();
	for (const r of standing) for (const h of exampleWords(r)) old.add(h);
	const keep = burst.rising
		.map((r, i) => ({ r, w: burst.words[i] as WordBurst["words"][number] }))
		.filter(({ r }) => {
			if (old.has(r.hash)) return false;
			const mine = exampleWords(r);
			return !standing.some((s) => mine.has(s.hash));
		});
	return keep.length === 0 ? undefined : { words: keep.map((k) => k.w), rising: keep.map((k) => k.r) };
}

/** The folded text of the word hashing to `h` in `folded`, if there. */
export function wordText(folded: string, h: number, tokens: Tokens): string | null {
	tokenize(folded, tokens);
	const { starts, ends } = tokens;
	if (starts === undefined || ends === undefined) return null;
	for (let i = 0; i < tokens.count; i++)
		if (tokens.words[i] === h) return folded.slice(starts[i] as number, ends[i] as number);
	return null;
}
