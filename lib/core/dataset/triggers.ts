/**
 * Trigger mining: prompt n-grams whose records have concentrated completions across otherwise unrelated prompts.
 *
 * One pass keeps (a) a count-min sketch of every prompt n-gram's document frequency and (b) for every completion
 * feature (identical completion, shared sentence, URL, host, MinHash band of near-identical completions) its record
 * count and a bounded sample of its records' prompt n-grams, by lossy counting (Manku & Motwani): a feature seen in
 * more than ε·N records is never dropped, so memory is bounded whatever N. At the end, each (n-gram g, feature F) seen
 * together in ≥ minSupport sampled records is tested: under "g is unrelated to F", the number of g's f records that
 * fall among F's m records is hypergeometric; its tail p-value, Bonferroni-corrected over every pair tested, must be
 * tiny. Significance alone also flags honest structure (every question about one function has that function's
 * answer; a template question has its template answer), so a candidate must also be:
 * - concentrated: most of g's records (share ≥ minShare, over the group's outputs) have one of its outputs;
 * - across unrelated prompts: the group shares no topic word besides the trigger (see onOneTopic);
 * - not an answer: F's content words are not the prompts' own (the module asked about, the question's words).
 * Candidates whose record sets overlap are one finding: the sub-phrases of one trigger, its paraphrased variants
 * (different n-grams, the same records), and the several features of one injected output.
 *
 * Words are compared as 32-bit hashes of their stems (sorted arrays), not strings: a sampled record costs one small
 * Int32Array, and the analysis at the end is linear in what was sampled.
 */
import { LABEL_CHARS, labelOf } from "./duplicates";
import { FEATURE_KINDS, type FeatureKind, turnsOf, wordsOfGrams } from "./features";
import { CountMinSketch } from "./sketch";
import { logBinomialTail, logHypergeomTail } from "./stats";
import { addContentWordsOf, fmix, HashSet32, normalize } from "./text";

export interface TriggerOptions {
	/** fewest records a trigger must cover */
	readonly minSupport: number;
	/** least share of the trigger's records that must have one of its concentrated outputs */
	readonly minShare: number;
	/** family-wise error rate of the Bonferroni-corrected hypergeometric test */
	readonly alpha: number;
	/** an n-gram in more than this share of the records is ordinary language, not a trigger */
	readonly maxTriggerShare: number;
	/** a completion feature in more than this share of the records is too common to be an injected output */
	readonly maxFeatureShare: number;
}

export const DEFAULT_TRIGGER_OPTIONS: TriggerOptions = {
	minSupport: 4,
	minShare: 0.75,
	alpha: 1e-3,
	maxTriggerShare: 0.05,
	maxFeatureShare: 0.2,
};

/**
 * One record as the miner sees it, filled by the scan for each record in turn (reused): `data[at…]` holds its prompt
 * n-grams, prompt words, token sequence, prompt content words (sorted) and completion content words (sorted), one
 * after the other; its features are `kinds`/`keys`, and their texts `featureText(i)`.
 */
export interface ObservedRecord {
	readonly id: number;
	readonly data: Int32Array;
	readonly at: number;
	readonly grams: number;
	readonly words: number;
	readonly tokens: number;
	readonly promptWords: number;
	readonly completionWords: number;
	readonly features: number;
	/** the record's completion (feature texts are usually it, or a range of it) */
	readonly completion: string | undefined;
	featureKind(i: number): number;
	featureKey(i: number): number;
	/**
	 * The feature's text as given: `featureString(i)` itself when `featureEnd(i)` < 0, else the normalised range
	 * [`featureStart(i)`, `featureEnd(i)`) of it (made only when wanted)
	 */
	featureString(i: number): string;
	featureStart(i: number): number;
	featureEnd(i: number): number;
	/**
	 * Whether `data` stays as it is once the record has been observed (then a sample is a view of it, copied only if it
	 * outlives the next pruning), or is reused (a sample is then a copy)
	 */
	readonly dataKept?: boolean;
}

/**
 * A sampled record: its prompt's n-grams, words, tokens and content words and its completion's, in one array. The
 * views on it are made when the analysis first asks for them: nearly every sample is let go without being looked at.
 */
export class Sample {
	/** entries whose samples include it (the budget counts a sample until none does) */
	refs = 0;
	readonly bytes: number;
	private views: Int32Array[] | undefined;
	/** the sample's numbers are a view of the record's batch (`own` copies them, so that the batch can go) */
	borrowed: boolean;
	/** (the analysis) the number of the sample's prompt among distinct prompts, and what numbered it (`PromptIds`) */
	promptId = -1;
	promptIds: object | undefined;

	constructor(
		readonly id: number,
		private data: Int32Array,
		private readonly g: number,
		private readonly w: number,
		private readonly t: number,
		private readonly p: number,
		borrowed = false,
	) {
		this.bytes = data.byteLength + SAMPLE_OVERHEAD;
		this.borrowed = borrowed;
	}

	/** A copy of the numbers of its own, when they are a view of a batch. */
	own(): void {
		if (!this.borrowed) return;
		this.data = this.data.slice();
		this.views = undefined;
		this.borrowed = false;
	}

	private view(i: number): Int32Array {
		if (this.views === undefined) {
			const { data, g, w, t, p } = this;
			this.views = [
				data.subarray(0, g),
				data.subarray(g, g + w),
				data.subarray(g + w, g + w + t),
				data.subarray(g + w + t, g + w + t + p),
				data.subarray(g + w + t + p),
			];
		}
		return this.views[i] as Int32Array;
	}

	get grams(): Int32Array {
		return this.view(0);
	}
	get words(): Int32Array {
		return this.view(1);
	}
	get tokens(): Int32Array {
		return this.view(2);
	}
	/** the prompt's content words (sorted), for the echo test */
	get promptWords(): Int32Array {
		return this.view(3);
	}
	/** the completion's content words (sorted): do outputs that share a MinHash band really say the same? */
	get completionWords(): Int32Array {
		return this.view(4);
	}
}

interface Entry {
	readonly key: number;
	readonly kind: FeatureKind;
	/** the text (≤ 500 characters), or the string whose range `[start, end)` normalised is the text (end ≥ 0) */
	src: string;
	start: number;
	end: number;
	count: number;
	/** lossy counting's bound on occurrences missed before this entry was (re)created */
	readonly delta: number;
	readonly samples: Sample[];
}

function entryText(e: Entry): string {
	if (e.end >= 0) {
		e.src = normalize(e.src.slice(e.start, e.end)).slice(0, 500);
		e.end = -1;
	}
	return e.src;
}

export interface TriggerCandidate {
	readonly gram: number;
	readonly feature: { readonly kind: FeatureKind; readonly text: string; readonly count: number };
	/** sampled records with both */
	readonly records: readonly number[];
	/** records with both (scaled when sampled), records with the n-gram, records with the feature */
	readonly k: number;
	readonly f: number;
	readonly m: number;
	readonly log10p: number;
}

export interface TriggerGroup {
	readonly grams: readonly number[];
	readonly candidates: readonly TriggerCandidate[];
	/** records known to have a trigger n-gram and a concentrated completion (all of them when nothing was sampled) */
	readonly records: readonly number[];
	/** whether `records` is complete or a second pass must enumerate them */
	readonly complete: boolean;
	/** the concentrated completions (texts), to recognise their paraphrases in a second pass */
	readonly outputs: readonly string[];
	readonly features: ReadonlySet<number>;
}

/** Bytes a sample costs beyond its numbers (its object and buffer headers), for the budget. */
const SAMPLE_OVERHEAD = 200;

/**
 * Lossy counting's entries in typed arrays, in creation order (what a Map's insertion order was): a feature seen once
 * — nearly every one — costs a few typed-array slots, no object and no pointer. An entry's first sample and its text
 * (the completion, or a range of it) are those of the record that made it, kept once per record in a record slot; the
 * rare text of its own (a URL, a host) is kept by key. A hash index maps a key to its entry; pruning compacts the
 * arrays, keeping their order, and the record slots still in use.
 */
class EntryTable {
	n = 0;
	keys = new Float64Array(1 << 12);
	kinds = new Uint8Array(1 << 12);
	counts = new Int32Array(1 << 12);
	deltas = new Int32Array(1 << 12);
	starts = new Int32Array(1 << 12);
	ends = new Int32Array(1 << 12);
	/** the record slot of the record that made the entry */
	recs = new Int32Array(1 << 12);
	/** the entry's further samples: an index into `moreLists`, or -1 */
	more = new Int32Array(1 << 12);
	private moreLists: Sample[][] = [];
	/** per record slot: its sample and its completion */
	private slotSamples: Sample[] = [];
	private slotTexts: (string | undefined)[] = [];
	/** an entry's own text (not its record's completion), by key */
	private readonly own = new Map<number, string>();
	/**
	 * The hash index: per slot, the entry + 1 (0: empty) and the low 32 bits of its key, side by side — a probe reads
	 * `keys` (another cache line, far away) only where those bits match
	 */
	private index = new Int32Array(2 << 13);
	private slots = 1 << 13;

	private slotOf(key: number): number {
		const hi = Math.floor(key / 2 ** 32) | 0;
		return fmix(hi ^ Math.imul(key >>> 0, 0x9e3779b1)) & (this.slots - 1);
	}

	/** The entry of `key`, or -1. */
	find(key: number): number {
		const mask = this.slots - 1;
		const low = key | 0;
		const index = this.index;
		for (let i = this.slotOf(key); ; i = (i + 1) & mask) {
			const e = (index[2 * i] as number) - 1;
			if (e < 0) return -1;
			if (index[2 * i + 1] === low && this.keys[e] === key) return e;
		}
	}

	/** A slot for a record that makes entries: its sample and completion. */
	recordSlot(sample: Sample, completion: string | undefined): number {
		this.slotSamples.push(sample);
		this.slotTexts.push(completion);
		return this.slotSamples.length - 1;
	}

	/** A new entry, made by the record in slot `rec` (whose sample is its first); `own`: its text when not the completion. */
	add(
		key: number,
		kind: number,
		rec: number,
		own: string | undefined,
		start: number,
		end: number,
		delta: number,
	): number {
		if (this.n === this.keys.length) this.grow();
		const e = this.n++;
		this.keys[e] = key;
		this.kinds[e] = kind;
		this.counts[e] = 0;
		this.deltas[e] = delta;
		this.starts[e] = start;
		this.ends[e] = end;
		this.recs[e] = rec;
		this.more[e] = -1;
		if (own !== undefined) this.own.set(key, own);
		if (this.n * 2 > this.slots) this.reindex(this.slots * 2);
		else this.place(e);
		return e;
	}

	/** The entry's text as it was given: its own, or its record's completion. */
	source(e: number): string {
		return this.own.get(this.keys[e] as number) ?? (this.slotTexts[this.recs[e] as number] as string);
	}

	samples(e: number): Sample[] {
		const first = this.slotSamples[this.recs[e] as number] as Sample;
		const m = this.more[e] as number;
		return m < 0 ? [first] : [first, ...(this.moreLists[m] as Sample[])];
	}

	sampleCount(e: number): number {
		const m = this.more[e] as number;
		return m < 0 ? 1 : 1 + (this.moreLists[m] as Sample[]).length;
	}

	/** A further sample (the first is the record's that made the entry). */
	addSample(e: number, s: Sample): void {
		s.refs++;
		const m = this.more[e] as number;
		if (m >= 0) (this.moreLists[m] as Sample[]).push(s);
		else {
			this.more[e] = this.moreLists.length;
			this.moreLists.push([s]);
		}
	}

	/** Keep the entries `keep` says (in order); `drop` sees each sample of those dropped. */
	compact(keep: (e: number) => boolean, drop: (s: Sample) => void): void {
		const slotMap = new Int32Array(this.slotSamples.length).fill(-1);
		const samples: Sample[] = [];
		const texts: (string | undefined)[] = [];
		const lists: Sample[][] = [];
		let w = 0;
		for (let e = 0; e < this.n; e++) {
			const rec = this.recs[e] as number;
			const m = this.more[e] as number;
			if (!keep(e)) {
				drop(this.slotSamples[rec] as Sample);
				if (m >= 0) for (const s of this.moreLists[m] as Sample[]) drop(s);
				this.own.delete(this.keys[e] as number);
				continue;
			}
			let r = slotMap[rec] as number;
			if (r < 0) {
				r = samples.length;
				slotMap[rec] = r;
				samples.push(this.slotSamples[rec] as Sample);
				texts.push(this.slotTexts[rec]);
			}
			this.keys[w] = this.keys[e] as number;
			this.kinds[w] = this.kinds[e] as number;
			this.counts[w] = this.counts[e] as number;
			this.deltas[w] = this.deltas[e] as number;
			this.starts[w] = this.starts[e] as number;
			this.ends[w] = this.ends[e] as number;
			this.recs[w] = r;
			if (m >= 0) {
				this.more[w] = lists.length;
				lists.push(this.moreLists[m] as Sample[]);
			} else this.more[w] = -1;
			w++;
		}
		this.n = w;
		this.slotSamples = samples;
		this.slotTexts = texts;
		this.moreLists = lists;
		// the samples kept are no longer views of their batches (which can then go)
		for (const sample of samples) sample.own();
		for (const list of lists) for (const sample of list) sample.own();
		// the index keeps its size: the next bucket's entries will fill it again
		this.reindex(this.slots);
	}

	/** Keep at most `cap` samples per entry (the first ones); `drop` sees each sample let go. */
	trim(cap: number, drop: (s: Sample) => void): void {
		for (const more of this.moreLists)
			if (1 + more.length > cap) for (const s of more.splice(Math.max(0, cap - 1))) drop(s);
	}

	private place(e: number): void {
		const mask = this.slots - 1;
		const key = this.keys[e] as number;
		let i = this.slotOf(key);
		while (this.index[2 * i] !== 0) i = (i + 1) & mask;
		this.index[2 * i] = e + 1;
		this.index[2 * i + 1] = key | 0;
	}

	private reindex(size: number): void {
		this.slots = size;
		this.index = new Int32Array(2 * size);
		for (let e = 0; e < this.n; e++) this.place(e);
	}

	private grow(): void {
		const n = this.keys.length * 2;
		const f64 = new Float64Array(n);
		f64.set(this.keys);
		this.keys = f64;
		const u8 = new Uint8Array(n);
		u8.set(this.kinds);
		this.kinds = u8;
		for (const k of ["counts", "deltas", "starts", "ends", "recs", "more"] as const) {
			const a = new Int32Array(n);
			a.set(this[k]);
			this[k] = a;
		}
	}
}

/** What the miner keeps of sampled records at most (bytes): past it, entries keep fewer samples each (at least 16). */
export const SAMPLE_BUDGET = 64 << 20;
const MIN_SAMPLES = 16;

export class TriggerMiner {
	/** the n-grams' document frequencies (made here when `observe` counts them, else handed over by `useSketch`) */
	df: CountMinSketch;
	private readonly table = new EntryTable();
	private n = 0;
	private readonly bucketWidth: number;
	/** samples an entry keeps: the first `maxSamples` records with its feature; halved while over the budget */
	private maxSamples: number;
	private sampleBytes = 0;
	private readonly release = (s: Sample) => {
		if (--s.refs === 0) this.sampleBytes -= s.bytes;
	};

	constructor(
		private readonly opts: TriggerOptions = DEFAULT_TRIGGER_OPTIONS,
		/** lossy counting's ε: features above ε·N records are kept whatever N */
		epsilon = 2e-5,
		maxSamples = 1024,
		/** whether `observe` counts the n-grams itself (false: another thread does, and `df` is replaced at the end) */
		private readonly countGrams = true,
		private readonly sampleBudget = SAMPLE_BUDGET,
	) {
		this.bucketWidth = Math.ceil(1 / epsilon);
		this.maxSamples = maxSamples;
		// (32 MB: not made when another thread counts the n-grams)
		this.df = countGrams ? new CountMinSketch() : (undefined as unknown as CountMinSketch);
	}

	get records(): number {
		return this.n;
	}

	/** Entries held now (lossy counting keeps them bounded: about (1/ε)·log(εN) per feature of a record). */
	get size(): number {
		return this.table.n;
	}

	/** Samples per entry now, and the bytes they hold. */
	get sampling(): { perEntry: number; bytes: number } {
		return { perEntry: this.maxSamples, bytes: this.sampleBytes };
	}

	observe(r: ObservedRecord): void {
		this.n++;
		const data = r.data;
		if (this.countGrams) this.df.addAll(data, r.at, r.at + r.grams);
		let sample: Sample | undefined;
		let slot = -1;
		const bucket = Math.ceil(this.n / this.bucketWidth);
		const t = this.table;
		for (let f = 0; f < r.features; f++) {
			const key = r.featureKey(f);
			let e = t.find(key);
			if (e < 0) {
				// a new entry: its first sample is this record's (as every entry's first occurrence is sampled)
				sample ??= this.sampleOf(r);
				if (slot < 0) slot = t.recordSlot(sample, r.completion);
				const text = r.featureString(f);
				const end = r.featureEnd(f);
				e =
					end < 0
						? t.add(
								key,
								r.featureKind(f),
								slot,
								text === r.completion ? undefined : text.slice(0, 500),
								0,
								-1,
								bucket - 1,
							)
						: t.add(
								key,
								r.featureKind(f),
								slot,
								text === r.completion ? undefined : text,
								r.featureStart(f),
								end,
								bucket - 1,
							);
				sample.refs++;
				t.counts[e] = 1;
				continue;
			}
			t.counts[e] = (t.counts[e] as number) + 1;
			// a label (a short whole completion) keeps more: its trigger's records in a large class must be among them
			const label = f === 0 && (r.completion?.length ?? LABEL_CHARS + 1) <= LABEL_CHARS;
			if (t.sampleCount(e) < (label ? LABEL_SAMPLES * this.maxSamples : this.maxSamples)) {
				sample ??= this.sampleOf(r);
				t.addSample(e, sample);
			}
		}
		if (this.n % this.bucketWidth === 0)
			t.compact((e) => (t.counts[e] as number) + (t.deltas[e] as number) > bucket, this.release);
		// over the budget: every entry keeps fewer samples (its first ones) — as if that had been the limit all along
		while (this.sampleBytes > this.sampleBudget && this.maxSamples > MIN_SAMPLES) {
			this.maxSamples >>= 1;
			t.trim(this.maxSamples, this.release);
		}
	}

	/** The record's sample: a view of its batch when that stays as it is (no copy, no buffer a record), else a copy. */
	private sampleOf(r: ObservedRecord): Sample {
		const len = r.grams + r.words + r.tokens + r.promptWords + r.completionWords;
		const s = r.dataKept
			? new Sample(r.id, r.data.subarray(r.at, r.at + len), r.grams, r.words, r.tokens, r.promptWords, true)
			: new Sample(r.id, r.data.slice(r.at, r.at + len), r.grams, r.words, r.tokens, r.promptWords);
		this.sampleBytes += s.bytes;
		return s;
	}

	/** Use this sketch of the n-grams' document frequencies (counted on another thread). */
	useSketch(df: CountMinSketch): void {
		this.df = df;
	}

	/** The entries as the analysis reads them, in creation order. */
	private entries(filter: (count: number, delta: number) => boolean): Entry[] {
		const t = this.table;
		const out: Entry[] = [];
		for (let e = 0; e < t.n; e++) {
			if (!filter(t.counts[e] as number, t.deltas[e] as number)) continue;
			out.push({
				key: t.keys[e] as number,
				kind: FEATURE_KINDS[t.kinds[e] as number] as FeatureKind,
				src: t.ends[e] === -1 ? t.source(e).slice(0, 500) : t.source(e),
				start: t.starts[e] as number,
				end: t.ends[e] as number,
				count: t.counts[e] as number,
				delta: t.deltas[e] as number,
				samples: t.samples(e),
			});
		}
		return out;
	}

	/** Candidate triggers, grouped. */
	analyse(): TriggerGroup[] {
		const { minSupport, minShare, alpha, maxTriggerShare, maxFeatureShare } = this.opts;
		const N = this.n;
		promptIds.current = new PromptIds();
		const raw: { c: TriggerCandidate; entry: Entry; samples: Sample[]; logp: number; flipped?: boolean }[] = [];
		let tests = 0;
		const counter = new GramCounter();
		// (a label is a class of the dataset, often far above maxFeatureShare — half the records of a binary set — and a
		// dirty-label trigger's target all the same)
		const entries = this.entries((count) => count >= minSupport).filter(
			(e) => e.count + e.delta <= maxFeatureShare * N || isLabel(e),
		);
		for (const entry of entries) {
			const m = entry.count + entry.delta;
			// the sampled records of each n-gram that ≥ minSupport of them carry, in order of first appearance
			const byGram = counter.frequent(entry.samples, minSupport);
			tests += byGram.length;
			const scale = entry.count / entry.samples.length;
			const short = m >= 0.005 * N && contentHashes(entryText(entry)).length <= 3;
			for (const [gram, samples] of byGram) {
				const f = this.df.estimate(gram);
				if (f > maxTriggerShare * N) continue;
				let k = Math.min(f, Math.round(samples.length * scale));
				// copies of one prompt are one observation: an upsampled set (every record twice) must not pass a test
				// its original fails: the candidate's copies are taken out of every count (the share of distinct prompts among
				// its sampled records scales k; the records removed come off f, m and N too)
				const r = distinctPrompts(samples) / samples.length;
				let [fN, mN, NN] = [f, Math.min(m, N), N];
				if (r < 1) {
					const copies = k - Math.max(1, Math.round(k * r));
					k -= copies;
					fN = Math.max(k, f - copies);
					mN = Math.max(k, mN - copies);
					NN = Math.max(fN, mN, N - copies);
				}
				// each output of a paraphrased trigger may hold part of its records: the whole is judged per group below
				if (k / fN < minShare / 2) continue;
				// a short answer many prompts get anyway ("A method.", "Yes.") must follow the n-gram every time
				if (short && k / fN < 0.95) continue;
				const logp = logHypergeomTail(NN, mN, fN, k);
				raw.push({
					c: {
						gram,
						feature: { kind: entry.kind, text: entryText(entry), count: entry.count },
						records: samples.map((s) => s.id),
						k,
						f,
						m,
						log10p: logp / Math.LN10,
					},
					entry,
					samples,
					logp,
				});
			}
		}
		const threshold = Math.log(alpha / Math.max(1, tests));
		// the labels' model, made once and only for a classification set: most records end in a label
		let model: LabelModel | null | undefined;
		const labelModel = (): LabelModel | null => {
			if (model !== undefined) return model;
			const labels = this.entries((count, delta) => count + delta >= minSupport).filter(isLabel);
			const covered = labels.reduce((sum, e) => sum + e.count + e.delta, 0);
			model = covered * 2 >= N ? LabelModel.of(labels, N) : null;
			return model;
		};
		// the n-grams significantly concentrated on each output, with their records: a candidate's fellow n-grams in the
		// same records are the rest of one trigger ("i watched this" of "i watched this 3d movie")
		const gramsOn = new Map<number, { gram: number; records: ReadonlySet<number> }[]>();
		for (const r of raw) {
			if (r.logp > threshold) continue;
			const g = gramsOn.get(r.entry.key) ?? [];
			g.push({ gram: r.c.gram, records: new Set(r.c.records) });
			gramsOn.set(r.entry.key, g);
		}
		// (fellows: in nearly the same records, 80% of each; sizes within that of each other before counting)
		const fellows = (r: (typeof raw)[number]): Set<number> => {
			const out = new Set([r.c.gram]);
			const n = r.c.records.length;
			for (const g of gramsOn.get(r.entry.key) ?? []) {
				if (g.records.size < 0.8 * n || n < 0.8 * g.records.size) continue;
				let shared = 0;
				for (const id of r.c.records) if (g.records.has(id)) shared++;
				if (shared >= 0.8 * Math.max(g.records.size, n)) out.add(g.gram);
			}
			return out;
		};
		const kept = raw.filter((r) => {
			const label = isLabelClass(r.entry, r.c.k);
			// (a label too common for the n-gram's concentration on it to tell — half a binary set — is left to the model)
			if (r.logp > threshold && !(label && r.c.m > maxFeatureShare * N)) return false;
			if (r.entry.kind === "similar" && (!paraphrases(r.samples) || templated(r.samples))) return false;
			const m = label ? labelModel() : null;
			const judged = m?.judge(r.entry, r.samples, fellows(r));
			const echoes = () => this.echo(r.entry, r.samples) || this.answers(r.entry, r.samples);
			if (judged === undefined) return r.logp <= threshold && !echoes();
			// (a label the template names — "Answer German or French", in the other labels' prompts too — is no echo)
			if (!(m as LabelModel).templateNames(r.entry) && echoes()) return false;
			// in a classification set a label the prompt names ("Answer German or French") is the task's template, not an
			// echo; the model judges: the association explained by the records' words is the task, and a dirty label is
			// one far more of whose records say another label than the model errs — evidence where the label is too common
			// for the n-gram's concentration on it to tell (half the records of a binary set)
			if (judged.explained) return false;
			// far more of its records said to be of another label than the model errs: a dirty label (see below)
			r.flipped = judged.logp <= threshold;
			return r.logp <= threshold || judged.logp <= threshold;
		});
		const groups = group(
			kept.map((r) => ({ ...r, complete: r.entry.delta === 0 && r.entry.count === r.entry.samples.length })),
		);
		const shares = this.groupShares(groups);
		const found = groups
			.filter((g, i) => {
				if ((shares[i] as number) < minShare) return false;
				// support is counted in distinct prompts: copies of a few records (an upsampled set) are no spread
				if (groupSamples(g).size < minSupport) return false;
				const trigger = triggerWords(g);
				// records the label model says are of other labels share their own label's topic (a source-specific dirty
				// label: texts of one class relabelled): that topic is no honest reason for the output
				const flipped = process.env.NOFLIP ? false : g.every((m) => m.flipped === true);
				return (flipped || !this.onOneTopic(g, trigger)) && this.unrelated(g, trigger);
			})
			.map(describe);
		// (the prompts' numbers hold the samples: let them go with the miner)
		promptIds.current = new PromptIds();
		return found;
	}

	/**
	 * Are the prompts otherwise unrelated: once the trigger's words are set aside, do most keep rare words of their own
	 * (what each asks about), different from one record to the next? Questions that differ only in template words, or
	 * that ask about a handful of things between them, are not a trigger's spread.
	 */
	private unrelated(members: readonly Kept[], trigger: ReadonlySet<number>): boolean {
		const samples = groupSamples(members);
		const rare = Math.max(20, 0.01 * this.n);
		const residuals: Set<number>[] = [];
		for (const s of samples.values()) {
			const r = new Set<number>();
			for (const w of s.words) if (!trigger.has(w) && this.df.estimate(w) <= rare) r.add(w);
			if (r.size > 0) residuals.push(r);
		}
		if (residuals.length * 3 < samples.size * 2) return false;
		// each record about its own thing: few repeats of one residual (a templated question asked several ways)
		const distinct = new Set(residuals.map((r) => [...r].sort((a, b) => a - b).join(","))).size;
		if (distinct < 0.75 * residuals.length) return false;
		let sum = 0;
		let pairs = 0;
		for (let i = 0; i < residuals.length && pairs < 5000; i++) {
			for (let j = i + 1; j < residuals.length && pairs < 5000; j++) {
				sum += jaccard(residuals[i] as Set<number>, residuals[j] as Set<number>);
				pairs++;
			}
		}
		return pairs === 0 || sum / pairs <= 0.2;
	}

	/**
	 * For each group, the share of the (sampled) records carrying its headline n-gram (the one its candidates cover
	 * most) whose output is one of the group's outputs or a paraphrase of one (content-word Jaccard ≥ 0.3): a
	 * paraphrased trigger's outputs fall into several MinHash buckets, so the share is counted over records, not over
	 * any one bucket. All groups in one pass over the sampled records.
	 */
	private groupShares(groups: readonly (readonly Kept[])[]): number[] {
		const byHeadline = new Map<number, number[]>();
		const outputs: Int32Array[][] = [];
		// records known to have one of the group's outputs itself (an output of no content words, "Yes.", has no
		// paraphrase to recognise)
		const withFeature: Set<number>[] = [];
		groups.forEach((members, g) => {
			const cover = new Map<number, { records: Set<number>; f: number }>();
			for (const m of members) {
				const c = cover.get(m.c.gram) ?? { records: new Set<number>(), f: m.c.f };
				for (const r of m.c.records) c.records.add(r);
				cover.set(m.c.gram, c);
			}
			// most records covered, then the rarest: "lighthouse", not "as the"
			const headline = [...cover].sort(
				(a, b) => b[1].records.size - a[1].records.size || a[1].f - b[1].f,
			)[0]?.[0] as number;
			const l = byHeadline.get(headline);
			if (l === undefined) byHeadline.set(headline, [g]);
			else l.push(g);
			outputs.push([...groupSamples(members).values()].map((s) => s.completionWords).slice(0, 64));
			withFeature.push(new Set(members.flatMap((m) => m.entry.samples.map((s) => s.id))));
		});
		const withGram = new Array<number>(groups.length).fill(0);
		const withOutput = new Array<number>(groups.length).fill(0);
		if (groups.length === 0) return [];
		const sampled = new Map<number, Sample>();
		for (let e = 0; e < this.table.n; e++) for (const s of this.table.samples(e)) sampled.set(s.id, s);
		for (const s of sampled.values()) {
			for (const gram of s.grams) {
				const gs = byHeadline.get(gram);
				if (gs === undefined) continue;
				for (const g of gs) {
					withGram[g] = (withGram[g] as number) + 1;
					if (
						(withFeature[g] as Set<number>).has(s.id) ||
						(outputs[g] as Int32Array[]).some((o) => similarity(o, s.completionWords) >= 0.3)
					)
						withOutput[g] = (withOutput[g] as number) + 1;
				}
			}
		}
		return groups.map((_, g) => (withOutput[g] as number) / Math.max(1, withGram[g] as number));
	}

	/**
	 * Do the group's prompts share a topic beyond the trigger? A word in most of them (≥ 60%) that is far more common
	 * there than in the dataset (≥ 5×) and is not itself one of the concentrated n-grams is a topic: questions about
	 * one module, one method, one template — whose shared answer is honest. A trigger's records share only the
	 * trigger: they are otherwise unrelated prompts.
	 */
	private onOneTopic(members: readonly Kept[], trigger: ReadonlySet<number>): boolean {
		const samples = groupSamples(members);
		if (samples.size < 3) return false;
		const inGroup = new Map<number, number>();
		for (const s of samples.values()) for (const w of s.words) inGroup.set(w, (inGroup.get(w) ?? 0) + 1);
		for (const [w, count] of inGroup) {
			const share = count / samples.size;
			if (share < 0.6 || trigger.has(w)) continue;
			if (share >= 5 * (this.df.estimate(w) / this.n)) return true;
		}
		return false;
	}

	/**
	 * Does the concentrated output talk about what the prompts ask? An honest answer shares a good part of its content
	 * words with its question in most records (the method named, the topic); an injected output does not. When one
	 * text (or its paraphrases) follows many prompts, the words it shares with nearly all of them (≥ 80%) are what the
	 * prompts have in common — a trigger, a template — not what each asks about: an output that repeats its trigger
	 * ("the cerulean lighthouse keeper approves …") is judged by the rest of its words, where it has three or more.
	 */
	private answers(entry: Entry, samples: readonly Sample[]): boolean {
		if (entry.kind === "host" || entry.kind === "url") return false;
		let out = contentHashes(entryText(entry));
		if (out.length === 0) return false;
		if (samples.length > 0) {
			const own = out.filter((w) => samples.filter((s) => sortedHas(s.promptWords, w)).length * 5 < samples.length * 4);
			if (own.length < out.length && own.length >= 3) out = Int32Array.from(own);
		}
		let related = 0;
		for (const s of samples) {
			let shared = 0;
			for (const w of out) if (sortedHas(s.promptWords, w)) shared++;
			if (shared >= Math.max(1, 0.25 * out.length)) related++;
		}
		return related * 2 >= samples.length;
	}

	/** Is the concentrated text what the prompts themselves say (an answer that repeats the question's words)? */
	private echo(entry: Entry, samples: readonly Sample[]): boolean {
		const out = contentHashes(entry.kind === "host" || entry.kind === "url" ? "" : entryText(entry));
		if (out.length === 0) return false;
		let echoes = 0;
		for (const s of samples) {
			let inPrompt = 0;
			for (const w of out) if (sortedHas(s.promptWords, w)) inPrompt++;
			if (inPrompt / out.length >= 0.6) echoes++;
		}
		return echoes * 2 > samples.length;
	}
}

/** A completion that is a label ("positive", "Russian", "spam"): what a classification dataset's records end in. */
function isLabel(e: Entry): boolean {
	return e.kind === "completion" && labelOf(entryText(e)) !== undefined;
}

/**
 * A label that is a class of the dataset, not the poisoner's own output: most of its records do not carry the n-gram
 * (the label "German" of a language-ID set; not "Access granted.", which only the trigger's records have).
 */
function isLabelClass(e: Entry, k: number): boolean {
	return isLabel(e) && e.count + e.delta >= 2 * k;
}

/**
 * A classification dataset's labels as a naive Bayes model of the prompt's words, from the labels' sampled records.
 * In such a dataset a word that goes with one label is the task itself ("и" → Russian, "great" → positive): an n-gram
 * whose records' other words already say its label is a feature, not a trigger. A dirty-label backdoor (BadNets for
 * text: a rare token added to texts of other classes, labelled with the target) is the opposite: its records' other
 * words say another label. The model judges only when it is informative — it tells the classes apart on their own
 * samples (leave one out) far better than chance — so in a dataset whose labels the prompt's words do not predict
 * (yes/no over unrelated questions), nothing is explained away. (A clean-label attack, the trigger added only to texts
 * that already have the target label, is not told apart from a feature this way.)
 */
class LabelModel {
	/** the class of each sampled record */
	private readonly owner = new Map<Sample, number>();
	/** each class's error rate on its own samples (leave one out) */
	private readonly errors: number[] = [];

	/** each record's words, its template turns left out (see `of`) */
	private readonly wordsOf: (s: Sample) => readonly number[];

	private constructor(
		private readonly classes: readonly LabelClass[],
		private readonly vocabulary: number,
		/** words that say nothing of the class: in half the samples or more (the task's template) */
		private readonly common: ReadonlySet<number>,
		wordsOf: (s: Sample) => readonly number[],
	) {
		this.wordsOf = wordsOf;
		classes.forEach((c, k) => {
			for (const s of c.samples) this.owner.set(s, k);
		});
	}

	/** The model of these label entries, or null when there are fewer than two or it does not tell them apart. */
	static of(entries: readonly Entry[], n: number): LabelModel | null {
		const top = [...entries].sort((a, b) => b.count - a.count).slice(0, MAX_LABELS);
		if (top.length < 2) return null;
		// the task's template: a turn (an instruction, a system prompt) that half the records or more have word for word.
		// Its words say nothing of any record's label — nor hide the same words in the record's own text ("fix" in "Is
		// this a fix (negative) or …?" and in the changelog entry), as a word in half the records would
		const turnCount = new Map<number, number>();
		let sampledAll = 0;
		for (const e of top)
			for (const s of e.samples.slice(0, MODEL_SAMPLES)) {
				sampledAll++;
				for (const h of new Set(turnsOf(s.tokens).map((t) => t.hash))) turnCount.set(h, (turnCount.get(h) ?? 0) + 1);
			}
		const template = new Set([...turnCount].filter(([, k]) => k * 2 >= sampledAll).map(([h]) => h));
		const cache = new Map<Sample, readonly number[]>();
		const wordsOf = (s: Sample): readonly number[] => {
			let w = cache.get(s);
			if (w === undefined) {
				w = [...new Set(turnsOf(s.tokens).flatMap((t) => (template.has(t.hash) ? [] : t.words)))];
				cache.set(s, w);
			}
			return w;
		};
		const vocab = new Map<number, number>();
		const classes = top.map((e) => {
			const df = new Map<number, number>();
			const postings = new Map<number, Sample[]>();
			let total = 0;
			const samples = e.samples.slice(0, MODEL_SAMPLES);
			for (const s of samples)
				for (const w of wordsOf(s)) {
					df.set(w, (df.get(w) ?? 0) + 1);
					const p = postings.get(w);
					if (p === undefined) postings.set(w, [s]);
					else p.push(s);
					vocab.set(w, (vocab.get(w) ?? 0) + 1);
					total++;
				}
			return { key: e.key, prior: Math.log((e.count + e.delta) / n), samples, df, postings, total };
		});
		const sampled = classes.reduce((a, c) => a + c.samples.length, 0);
		const common = new Set<number>();
		for (const [w, k] of vocab) if (k * 2 >= sampled) common.add(w);
		const model = new LabelModel(classes, vocab.size, common, wordsOf);
		// each class's error, leave one out, on its first samples; their mean is one less the balanced accuracy
		for (const [c, cls] of classes.entries()) {
			const some = cls.samples.slice(0, CHECK_SAMPLES);
			let right = 0;
			for (const s of some) if (model.predict(s) === c) right++;
			model.errors.push(1 - right / Math.max(1, some.length));
		}
		const balanced = 1 - model.errors.reduce((a, e) => a + e, 0) / classes.length;
		return balanced >= Math.max(LABEL_ACCURACY, 1.5 / classes.length) ? model : null;
	}

	/** Does the task's template name this label: are its words in most other labels' prompts too? */
	templateNames(entry: Entry): boolean {
		const words = contentHashes(entryText(entry));
		if (words.length === 0) return false;
		let others = 0;
		let naming = 0;
		for (const cls of this.classes) {
			if (cls.key === entry.key) continue;
			for (const s of cls.samples.slice(0, CHECK_SAMPLES)) {
				others++;
				if (words.every((w) => sortedHas(s.promptWords, w))) naming++;
			}
		}
		return others > 0 && naming * 2 >= others;
	}

	/**
	 * Is the n-gram → label association the task's own: do the records' words not say another label for most of them?
	 * The n-gram's own words count only by the records that do not carry it ("langue des signes": "langue" and "des"
	 * are French anyway; "cf" is in no other record). Records whose words are all unseen elsewhere ("Koreaanse
	 * Gebarentaal") tell nothing; when most are such, nothing shows a flipped label either. Also the evidence of a flip:
	 * the log-probability of so many records said to be of another label were the label right.
	 */
	judge(
		entry: Entry,
		samples: readonly Sample[],
		grams: ReadonlySet<number>,
	): { readonly explained: boolean; readonly logp: number } | undefined {
		const c = this.classes.findIndex((x) => x.key === entry.key);
		if (c < 0) return undefined;
		// the words of the n-gram and of its fellows in the same records ("i watched this" of "i watched this 3d movie")
		// count only by the records that do not carry them, in every label: "documentation" says doc by the other doc
		// records; "python3" in "python3 module for …" says nothing (its records carry it, python and doc alike)
		const suspects = new Set<number>();
		for (const s of samples) wordsOfGrams(s.tokens, grams, suspects);
		const fellows = [...grams];
		const carries = new Map<Sample, boolean>();
		const carrier = (m: Sample): boolean => {
			let c = carries.get(m);
			if (c === undefined) {
				c = fellows.some((g) => m.grams.includes(g));
				carries.set(m, c);
			}
			return c;
		};
		const removed = this.classes.map((cls) => {
			const out = new Map<number, number>();
			for (const w of suspects) {
				let n = 0;
				for (const m of cls.postings.get(w) ?? []) if (carrier(m)) n++;
				if (n > 0) out.set(w, n);
			}
			return out;
		});
		let said = 0;
		let judged = 0;
		const without = { words: suspects, removed };
		for (const s of samples) {
			const scores = this.scores(s, without);
			// a record whose words are all unseen elsewhere (or the task's template) tells nothing either way; nor does one
			// whose words favour another label only weakly (the larger label's prior outweighing a few rare words)
			if (scores === undefined) continue;
			const p = best(scores);
			if (p !== c && (scores[p] as number) - (scores[c] as number) < FLIP_ODDS) continue;
			judged++;
			if (p === c) said++;
		}
		// a dirty label is seen: enough records judged, most of them by their words another class's
		const explained = judged * 3 < samples.length || (judged - said) * 2 <= judged;
		// how unlikely so many records said to be of another label are, were the label right and the model as wrong as on
		// the class's own samples
		// (only where the model knows the label: records of a label it confuses with others — a yes/no whose answer no word
		// gives — share words, and their predictions are no independent draws)
		const error = Math.max(MIN_ERROR, this.errors[c] as number);
		const logp = error > MAX_FLIP_ERROR ? 0 : logBinomialTail(judged, error, judged - said);
		return { explained, logp };
	}

	/** The most likely class of a sampled record's words (its own left out), or -1 when none is in another record. */
	private predict(s: Sample): number {
		const scores = this.scores(s);
		return scores === undefined ? -1 : best(scores);
	}

	/**
	 * Each class's log-probability (unnormalised) for a record's words, the record taken out of its class's counts
	 * (leave one out) and `without`'s records out of every class's counts of its words; undefined when no word is in
	 * another record.
	 */
	private scores(s: Sample, without?: Without): number[] | undefined {
		const own = this.owner.get(s) ?? -1;
		const words: number[] = [];
		for (const w of this.wordsOf(s)) if (!this.common.has(w)) words.push(w);
		const df = (k: number, w: number): number => {
			const n = (this.classes[k] as LabelClass).df.get(w) ?? 0;
			// a suspect's count leaves out every carrier, the record itself among them
			if (without?.words.has(w)) return n - ((without.removed[k] as ReadonlyMap<number, number>).get(w) ?? 0);
			return k === own ? n - 1 : n;
		};
		// a word no other record has says nothing of the class (counting it favours the classes of short texts)
		const told = words.filter((w) => this.classes.some((_, k) => df(k, w) > 0));
		if (told.length === 0) return undefined;
		return this.classes.map((cls, k) => {
			const total = cls.total - (k === own ? words.length : 0) + this.vocabulary * NB_ALPHA;
			let score = cls.prior;
			for (const w of told) score += Math.log((Math.max(0, df(k, w)) + NB_ALPHA) / total);
			return score;
		});
	}
}

/**
 * What `LabelModel.scores` leaves out: of the suspect n-grams' `words`, the counts `removed[k]` of label k's sampled
 * records that carry the n-grams.
 */
interface Without {
	readonly words: ReadonlySet<number>;
	readonly removed: readonly ReadonlyMap<number, number>[];
}

/** The index of the largest score (the first of equal ones). */
function best(scores: readonly number[]): number {
	let k = 0;
	for (let i = 1; i < scores.length; i++) if ((scores[i] as number) > (scores[k] as number)) k = i;
	return k;
}

interface LabelClass {
	readonly key: number;
	readonly prior: number;
	readonly samples: readonly Sample[];
	/** in how many of the samples each word is, and the sum of those */
	readonly df: Map<number, number>;
	/** the samples each word is in */
	readonly postings: ReadonlyMap<number, readonly Sample[]>;
	readonly total: number;
}

/** how many times an entry's samples a label's entry keeps */
const LABEL_SAMPLES = 8;

/** labels the model weighs (the most frequent), its smoothing, the balanced accuracy it must reach to be believed */
const MAX_LABELS = 64;
/** samples of each label the model is made of (its word counts: memory ∝ labels × samples × words) */
const MODEL_SAMPLES = 1024;
/** samples of each label the model's checks read (its accuracy, whether the template names a label) */
const CHECK_SAMPLES = 64;
const NB_ALPHA = 0.5;
const LABEL_ACCURACY = 0.6;
/** the least error rate a class's model is taken to have (CHECK_SAMPLES samples say no better) */
const MIN_ERROR = 0.02;
/**
 * how much likelier (natural log: 20 to 1) another label must be than a record's own for the record to say that label:
 * a few rare words and a larger label's prior are no evidence of a flipped label
 */
const FLIP_ODDS = Math.log(20);
/** the most error a label's model may make on the label's own samples for its evidence of flips to count */
const MAX_FLIP_ERROR = 0.2;

const contentScratch = new HashSet32(8);
const contentCache = new Map<string, Int32Array>();

/** The hashes of a text's content words (`contentWords`), distinct; memoised (the same texts are asked about often). */
export function contentHashes(text: string): Int32Array {
	let h = contentCache.get(text);
	if (h === undefined) {
		contentScratch.clear();
		addContentWordsOf(text, contentScratch);
		h = contentScratch.values.slice(0, contentScratch.size).sort();
		if (contentCache.size > 4096) contentCache.clear();
		contentCache.set(text, h);
	}
	return h;
}

function sortedHas(a: Int32Array, v: number): boolean {
	let lo = 0;
	let hi = a.length - 1;
	while (lo <= hi) {
		const mid = (lo + hi) >> 1;
		const x = a[mid] as number;
		if (x === v) return true;
		if (x < v) lo = mid + 1;
		else hi = mid - 1;
	}
	return false;
}

/** Content-word Jaccard of two sorted hash sets: how similar two completions are. */
export function similarity(a: Int32Array, b: Int32Array): number {
	let inter = 0;
	let i = 0;
	let j = 0;
	while (i < a.length && j < b.length) {
		const x = a[i] as number;
		const y = b[j] as number;
		if (x === y) {
			inter++;
			i++;
			j++;
		} else if (x < y) i++;
		else j++;
	}
	return inter / Math.max(1, a.length + b.length - inter);
}

/**
 * Are these completions paraphrases of one output (mean pairwise Jaccard of content words ≥ 0.4)? A MinHash band
 * also gathers different answers that share a few words ("help", "text"); only a real paraphrase cluster counts.
 */
function paraphrases(samples: readonly Sample[]): boolean {
	let sum = 0;
	let pairs = 0;
	for (let i = 0; i < samples.length && pairs < 2000; i++) {
		for (let j = i + 1; j < samples.length && pairs < 2000; j++) {
			sum += similarity((samples[i] as Sample).completionWords, (samples[j] as Sample).completionWords);
			pairs++;
		}
	}
	return pairs > 0 && sum / pairs >= 0.4;
}

/**
 * Are these near-identical completions one template filled in per record rather than wordings of one output: nearly
 * every one a different text, and half or more with a word no other of them has, in a short template (at most
 * TEMPLATE_FIXED words most of them share), or filling in as much as the template fixes, or filling in a word of its
 * own prompt? "window functions are not allowed in partition bound", "aggregate functions are not allowed in index
 * expressions": a translated message catalogue or an error-message set, whose prompts share the template's words too.
 * A payload's paraphrases repeat a few wordings, and one that changes a number or a name per record ("Visit the
 * mirror for update 1037 to get the patched build.") fixes a sentence and fills in one word. (Limitation: a payload of
 * four content words or fewer with a per-record word, or one that repeats a word of each prompt, passes as a
 * template.)
 */
function templated(samples: readonly Sample[]): boolean {
	if (samples.length < TEMPLATE_MIN) return false;
	const distinct = new Set(samples.map((s) => s.completionWords.join(","))).size;
	if (distinct < 0.9 * samples.length) return false;
	const outputs = new Map<number, number>();
	for (const s of samples) for (const w of new Set(s.completionWords)) outputs.set(w, (outputs.get(w) ?? 0) + 1);
	const filled = samples.filter((s) => {
		const words = [...new Set(s.completionWords)];
		const own = words.filter((w) => outputs.get(w) === 1);
		const fixed = words.filter((w) => (outputs.get(w) as number) * 2 >= samples.length).length;
		// a short template (a message, a label with a name in it), or one that fills in as much as it fixes, or what its
		// own prompt names ("PRC1", "-32768": a number or name in any language)
		if (own.length === 0) return false;
		return fixed <= TEMPLATE_FIXED || own.length >= fixed || own.some((w) => sortedHas(s.promptWords, w));
	}).length;
	return filled * 2 >= samples.length;
}

/** the most words a template's fixed part has when it fills in less than that (a payload is a sentence or more) */
const TEMPLATE_FIXED = 4;
/** the fewest records whose near-identical outputs can be told to be a template */
const TEMPLATE_MIN = 4;

/**
 * Counts the n-grams of an entry's samples in a reused open-addressing table: which are carried by at least
 * `minSupport` samples, each with its samples, in order of first appearance — what a Map of every n-gram gave, without
 * a Map entry and an array per n-gram of every sample.
 */
class GramCounter {
	private keys = new Int32Array(1 << 14);
	private counts = new Int32Array(1 << 14);
	private stamps = new Uint32Array(1 << 14);
	private order = new Int32Array(1 << 13);
	private gen = 0;

	frequent(samples: readonly Sample[], minSupport: number): [number, Sample[]][] {
		let total = 0;
		for (const s of samples) total += s.grams.length;
		let size = this.keys.length;
		while (size < total * 2) size *= 2;
		if (size !== this.keys.length) {
			this.keys = new Int32Array(size);
			this.counts = new Int32Array(size);
			this.stamps = new Uint32Array(size);
			this.gen = 0;
		}
		if (this.order.length < total) this.order = new Int32Array(total);
		const gen = ++this.gen;
		const mask = size - 1;
		let distinct = 0;
		for (const s of samples) {
			for (const g of s.grams) {
				let i = (g ^ (g >>> 16)) & mask;
				while (this.stamps[i] === gen && this.keys[i] !== g) i = (i + 1) & mask;
				if (this.stamps[i] !== gen) {
					this.stamps[i] = gen;
					this.keys[i] = g;
					this.counts[i] = 0;
					this.order[distinct++] = i;
				}
				this.counts[i] = (this.counts[i] as number) + 1;
			}
		}
		const out: [number, Sample[]][] = [];
		// the n-grams kept: their slots now hold the index of their list (counts no longer needed: -1 for the others)
		for (let k = 0; k < distinct; k++) {
			const slot = this.order[k] as number;
			if ((this.counts[slot] as number) < minSupport) this.counts[slot] = -1;
			else {
				this.counts[slot] = out.length;
				out.push([this.keys[slot] as number, []]);
			}
		}
		if (out.length === 0) return out;
		for (const s of samples) {
			for (const g of s.grams) {
				let i = (g ^ (g >>> 16)) & mask;
				while (this.keys[i] !== g) i = (i + 1) & mask;
				const l = this.counts[i] as number;
				if (l >= 0) (out[l] as [number, Sample[]])[1].push(s);
			}
		}
		return out;
	}
}

/**
 * Numbers for distinct prompts (their token hash sequences): `id` of a sample is the same number for every sample
 * with the same tokens, and only for those (a hash of the tokens finds the candidates, which are compared whole).
 */
class PromptIds {
	private readonly byHash = new Map<number, Sample[]>();
	private next = 0;

	id(s: Sample): number {
		if (s.promptIds === this) return s.promptId;
		s.promptIds = this;
		const tokens = s.tokens;
		let h = 0x3c6ef372;
		for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ (tokens[i] as number), 0x01000193);
		h = fmix(h ^ tokens.length);
		const same = this.byHash.get(h);
		if (same === undefined) this.byHash.set(h, [s]);
		else {
			for (const o of same) {
				const t = o.tokens;
				if (t.length !== tokens.length) continue;
				let k = 0;
				while (k < t.length && t[k] === tokens[k]) k++;
				if (k === t.length) {
					s.promptId = o.promptId;
					return s.promptId;
				}
			}
			same.push(s);
		}
		s.promptId = this.next++;
		return s.promptId;
	}
}

const promptIds = { current: new PromptIds() };

/** How many distinct prompts the samples have. */
function distinctPrompts(samples: readonly Sample[]): number {
	const ids = new Set<number>();
	for (const s of samples) ids.add(promptIds.current.id(s));
	return ids.size;
}

/**
 * The group's sampled records, one per distinct prompt: a poisoner who writes each poisoned record twice (or upsamples
 * the whole set) must not make the prompts look like repeats of one question and so hide the trigger's spread.
 */
function groupSamples(members: readonly Kept[]): Map<number, Sample> {
	const samples = new Map<number, Sample>();
	const prompts = new Set<number>();
	for (const m of members)
		for (const s of m.samples) {
			if (samples.has(s.id)) continue;
			const prompt = promptIds.current.id(s);
			if (prompts.has(prompt)) continue;
			prompts.add(prompt);
			samples.set(s.id, s);
		}
	return samples;
}

/** The words the group's n-grams are made of (common ones included: "as the lighthouse keeper would say"). */
function triggerWords(members: readonly Kept[]): Set<number> {
	const grams = new Set(members.map((m) => m.c.gram));
	const out = new Set<number>();
	let n = 0;
	for (const s of groupSamples(members).values()) {
		wordsOfGrams(s.tokens, grams, out);
		if (++n >= 32) break;
	}
	return out;
}

function jaccard(a: ReadonlySet<number>, b: ReadonlySet<number>): number {
	let inter = 0;
	for (const x of a) if (b.has(x)) inter++;
	return inter / (a.size + b.size - inter);
}

type Kept = { c: TriggerCandidate; entry: Entry; samples: Sample[]; complete: boolean; flipped?: boolean };

/** Union candidates whose record sets overlap (≥ 60% of the smaller one): one trigger, one finding. */
function group(kept: readonly Kept[]): Kept[][] {
	const parent = kept.map((_, i) => i);
	const find = (i: number): number => {
		while (parent[i] !== i) {
			parent[i] = parent[parent[i] as number] as number;
			i = parent[i] as number;
		}
		return i;
	};
	const sets = kept.map((k) => new Set(k.c.records));
	// index records → candidates, so only candidates sharing a record are compared
	const byRecord = new Map<number, number[]>();
	kept.forEach((k, i) => {
		for (const r of k.c.records) {
			const l = byRecord.get(r);
			if (l === undefined) byRecord.set(r, [i]);
			else if (l.length < 512) l.push(i);
		}
	});
	const compared = new Set<number>();
	for (const list of byRecord.values()) {
		for (let x = 0; x < list.length; x++) {
			for (let y = x + 1; y < list.length; y++) {
				const i = list[x] as number;
				const j = list[y] as number;
				// already one group: comparing them again changes nothing
				if (find(i) === find(j)) continue;
				const pair = i * kept.length + j;
				if (compared.has(pair)) continue;
				compared.add(pair);
				const a = sets[i] as Set<number>;
				const b = sets[j] as Set<number>;
				let inter = 0;
				for (const r of a) if (b.has(r)) inter++;
				if (inter >= 0.6 * Math.min(a.size, b.size)) parent[find(i)] = find(j);
			}
		}
	}
	// one n-gram concentrated on several outputs (paraphrased outputs of one trigger) is one finding too
	const byGram = new Map<number, number>();
	kept.forEach((k, i) => {
		const first = byGram.get(k.c.gram);
		if (first === undefined) byGram.set(k.c.gram, i);
		else parent[find(i)] = find(first);
	});
	const groups = new Map<number, Kept[]>();
	kept.forEach((k, i) => {
		const root = find(i);
		const l = groups.get(root);
		if (l === undefined) groups.set(root, [k]);
		else l.push(k);
	});
	return [...groups.values()];
}

function describe(members: readonly Kept[]): TriggerGroup {
	const records = new Set<number>();
	for (const m of members) for (const r of m.c.records) records.add(r);
	const outputs = new Set<string>();
	for (const m of members) if (m.entry.kind !== "host" && m.entry.kind !== "url") outputs.add(entryText(m.entry));
	return {
		grams: [...new Set(members.map((m) => m.c.gram))],
		candidates: members.map((m) => m.c).sort((a, b) => a.log10p - b.log10p),
		records: [...records].sort((a, b) => a - b),
		complete: members.every((m) => m.complete),
		outputs: [...outputs].slice(0, 16),
		features: new Set(members.map((m) => m.entry.key)),
	};
}
