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
 */
import { type CompletionFeature, type FeatureKind, type PromptGrams, wordsOfGrams } from "./features";
import { contentWords } from "./text";
import { CountMinSketch } from "./sketch";
import { logHypergeomTail } from "./stats";

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

interface Sample {
	readonly id: number;
	readonly grams: Int32Array;
	readonly words: Int32Array;
	readonly tokens: Int32Array;
	/** the prompt's content words, for the echo test */
	readonly promptWords: ReadonlySet<string>;
	/** the completion's content words: do outputs that share a MinHash band really say the same? */
	readonly completionWords: ReadonlySet<string>;
}

interface Entry {
	readonly key: number;
	readonly kind: FeatureKind;
	readonly text: string;
	count: number;
	/** lossy counting's bound on occurrences missed before this entry was (re)created */
	readonly delta: number;
	readonly samples: Sample[];
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
	/** stemmed word sets of the concentrated completions, to recognise their paraphrases in a second pass */
	readonly outputs: readonly string[];
	readonly features: ReadonlySet<number>;
}

export class TriggerMiner {
	readonly df = new CountMinSketch();
	private readonly entries = new Map<number, Entry>();
	private n = 0;
	private readonly bucketWidth: number;

	constructor(
		private readonly opts: TriggerOptions = DEFAULT_TRIGGER_OPTIONS,
		/** lossy counting's ε: features above ε·N records are kept whatever N */
		epsilon = 2e-5,
		private readonly maxSamples = 256,
	) {
		this.bucketWidth = Math.ceil(1 / epsilon);
	}

	get records(): number {
		return this.n;
	}

	observe(
		id: number,
		prompt: PromptGrams,
		promptWords: ReadonlySet<string>,
		features: readonly CompletionFeature[],
		completionWords: ReadonlySet<string>,
	): void {
		this.n++;
		for (const g of prompt.grams) this.df.add(g);
		let sample: Sample | undefined;
		const bucket = Math.ceil(this.n / this.bucketWidth);
		for (const f of features) {
			let e = this.entries.get(f.key);
			if (e === undefined) {
				e = { key: f.key, kind: f.kind, text: f.text.slice(0, 500), count: 0, delta: bucket - 1, samples: [] };
				this.entries.set(f.key, e);
			}
			e.count++;
			if (e.samples.length < this.maxSamples) {
				sample ??= { id, grams: prompt.grams, words: prompt.words, tokens: prompt.tokens, promptWords, completionWords };
				e.samples.push(sample);
			}
		}
		if (this.n % this.bucketWidth === 0) {
			for (const [k, e] of this.entries) if (e.count + e.delta <= bucket) this.entries.delete(k);
		}
	}

	/** Candidate triggers, grouped; `wordDf` is the document frequency of a word hash. */
	analyse(): TriggerGroup[] {
		const { minSupport, minShare, alpha, maxTriggerShare, maxFeatureShare } = this.opts;
		const N = this.n;
		const raw: { c: TriggerCandidate; entry: Entry; samples: Sample[]; logp: number }[] = [];
		let tests = 0;
		for (const entry of this.entries.values()) {
			const m = entry.count + entry.delta;
			if (entry.count < minSupport || m > maxFeatureShare * N) continue;
			const byGram = new Map<number, Sample[]>();
			for (const s of entry.samples) {
				for (const g of s.grams) {
					const list = byGram.get(g);
					if (list === undefined) byGram.set(g, [s]);
					else list.push(s);
				}
			}
			const scale = entry.count / entry.samples.length;
			const short = m >= 0.005 * N && contentWords(entry.text).size <= 3;
			for (const [gram, samples] of byGram) {
				if (samples.length < minSupport) continue;
				tests++;
				const f = this.df.estimate(gram);
				if (f > maxTriggerShare * N) continue;
				const k = Math.min(f, Math.round(samples.length * scale));
				// each output of a paraphrased trigger may hold part of its records: the whole is judged per group below
				if (k / f < minShare / 2) continue;
				// a short answer many prompts get anyway ("A method.", "Yes.") must follow the n-gram every time
				if (short && k / f < 0.95) continue;
				const logp = logHypergeomTail(N, Math.min(m, N), f, k);
				raw.push({
					c: {
						gram,
						feature: { kind: entry.kind, text: entry.text, count: entry.count },
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
		const kept = raw.filter(
			(r) =>
				r.logp <= threshold &&
				!this.echo(r.entry, r.samples) &&
				!this.answers(r.entry, r.samples) &&
				(r.entry.kind !== "similar" || paraphrases(r.samples)),
		);
		const groups = group(kept.map((r) => ({ ...r, complete: r.entry.delta === 0 && r.entry.count === r.entry.samples.length })));
		return groups
			.filter((g) => {
				if (this.groupShare(g) < minShare) return false;
				const trigger = triggerWords(g);
				return !this.onOneTopic(g, trigger) && this.unrelated(g, trigger);
			})
			.map(describe);
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
		if (residuals.length * 2 < samples.size) return false;
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

	private sampled?: Map<number, Sample>;

	/**
	 * The share of the (sampled) records carrying the group's headline n-gram (the one its candidates cover most) whose output
	 * is one of the group's outputs or a paraphrase of one (content-word Jaccard ≥ 0.3): a paraphrased trigger's outputs
	 * fall into several MinHash buckets, so the share is counted over records, not over any one bucket.
	 */
	private groupShare(members: readonly Kept[]): number {
		const cover = new Map<number, { records: Set<number>; f: number }>();
		for (const m of members) {
			const c = cover.get(m.c.gram) ?? { records: new Set<number>(), f: m.c.f };
			for (const r of m.c.records) c.records.add(r);
			cover.set(m.c.gram, c);
		}
		// most records covered, then the rarest: "lighthouse", not "as the"
		const headline = [...cover].sort((a, b) => b[1].records.size - a[1].records.size || a[1].f - b[1].f)[0]?.[0] as number;
		const outputs = [...groupSamples(members).values()].map((s) => s.completionWords).slice(0, 64);
		if (this.sampled === undefined) {
			this.sampled = new Map();
			for (const e of this.entries.values()) for (const s of e.samples) this.sampled.set(s.id, s);
		}
		let withGram = 0;
		let withOutput = 0;
		for (const s of this.sampled.values()) {
			if (!s.grams.includes(headline)) continue;
			withGram++;
			if (outputs.some((o) => similarity(o, s.completionWords) >= 0.3)) withOutput++;
		}
		return withOutput / Math.max(1, withGram);
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
	 * words with its question in most records (the method named, the topic); an injected output does not.
	 */
	private answers(entry: Entry, samples: readonly Sample[]): boolean {
		if (entry.kind === "host" || entry.kind === "url") return false;
		const out = contentWords(entry.text);
		if (out.size === 0) return false;
		let related = 0;
		for (const s of samples) {
			let shared = 0;
			for (const w of out) if (s.promptWords.has(w)) shared++;
			if (shared >= Math.max(1, 0.25 * out.size)) related++;
		}
		return related * 2 >= samples.length;
	}

	/** Is the concentrated text what the prompts themselves say (an answer that repeats the question's words)? */
	private echo(entry: Entry, samples: readonly Sample[]): boolean {
		const out = contentWords(entry.kind === "host" || entry.kind === "url" ? "" : entry.text);
		if (out.size === 0) return false;
		let echoes = 0;
		for (const s of samples) {
			let inPrompt = 0;
			for (const w of out) if (s.promptWords.has(w)) inPrompt++;
			if (inPrompt / out.size >= 0.6) echoes++;
		}
		return echoes * 2 > samples.length;
	}
}


/**
 * Are these completions paraphrases of one output (mean pairwise Jaccard of content words ≥ 0.4)? A MinHash band
 * also gathers different answers that share a few words ("help", "text"); only a real paraphrase cluster counts.
 */
function similarity(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
	let inter = 0;
	for (const w of a) if (b.has(w)) inter++;
	return inter / Math.max(1, a.size + b.size - inter);
}

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

function groupSamples(members: readonly Kept[]): Map<number, Sample> {
	const samples = new Map<number, Sample>();
	for (const m of members) for (const s of m.samples) samples.set(s.id, s);
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

type Kept = { c: TriggerCandidate; entry: Entry; samples: Sample[]; complete: boolean };

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
	const compared = new Set<string>();
	for (const list of byRecord.values()) {
		for (let x = 0; x < list.length; x++) {
			for (let y = x + 1; y < list.length; y++) {
				const i = list[x] as number;
				const j = list[y] as number;
				const pair = `${i},${j}`;
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
	for (const m of members) if (m.entry.kind !== "host" && m.entry.kind !== "url") outputs.add(m.entry.text);
	return {
		grams: [...new Set(members.map((m) => m.c.gram))],
		candidates: members.map((m) => m.c).sort((a, b) => a.log10p - b.log10p),
		records: [...records].sort((a, b) => a - b),
		complete: members.every((m) => m.complete),
		outputs: [...outputs].slice(0, 16),
		features: new Set(members.map((m) => m.entry.key)),
	};
}
