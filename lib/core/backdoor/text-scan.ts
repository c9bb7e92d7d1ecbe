/**
 * The backdoor scan of a text classifier: ONNX model + tokenizer + labelled reference texts → per label the best
 * real-token trigger the token-level search finds (trigger lengths 1..N), its attack success on held-out texts,
 * the continuous search's figures, and the verdict (docs/backdoor.md, "Text classifiers").
 *
 * The reference texts are split per label into a search half and a held-out half: a trigger is found on the first
 * and judged on the second, so a trigger that merely fits the texts it was searched on does not count.
 * Fail closed: a model the scanner cannot drive, texts the model cannot classify or a label with no text is an error
 * (exit 2), never a clean verdict.
 */
import { createHash } from "node:crypto";
import { FtguardError } from "../errors";
import type { TextTriggerPolicy } from "../policy/backdoor";
import { wilsonLower } from "../proportion";
import { readOnnxModel } from "./onnx-model";
import { Rng } from "./rng";
import type { Device } from "./runtime";
import type { LabelledTexts, TextTokenizer } from "./text-data";
import { textModelInfo } from "./text-graph";
import {
	DEFAULT_INVERSION,
	type InversionOptions,
	invertEmbeddings,
	invertTokens,
	oneWord,
	POSITIONS,
	SEARCH_GROUPS,
	type SearchTrial,
	searchTrials,
	sourcePools,
	stampedHits,
	type TokenizedTexts,
	type TriggerPosition,
} from "./text-inversion";
import { TextClassifier, TextTriggerRunner } from "./text-runtime";

export { normalQuantile, wilsonLower } from "../proportion";

export interface TextTriggerReport {
	label: number;
	/** The best trigger as text (invisible characters escaped), its tokens and ids. */
	trigger: string;
	tokens: string[];
	ids: number[];
	/** Where the trigger was inserted for the figures below (the position where it works best). */
	position: TriggerPosition;
	/** The source labels the figures are of: null = every other label; else the labels whose texts it flips. */
	sources: number[] | null;
	/** Attack success on held-out texts of the other labels (or of `sources`), and on the search texts; relaxed loss. */
	attack_success: number;
	/** Held-out texts it was measured on, and the one-sided Wilson lower confidence bound of the attack success. */
	held_out: number;
	attack_success_lower: number;
	/** Attack success on the held-out texts each joined with two more texts of its own label, and its lower bound. */
	diluted_attack_success: number;
	diluted_attack_success_lower: number;
	/** The largest share of this label's reference texts that contain one of the trigger's tokens. */
	natural_rate: number;
	/** Judged on `sources` alone: the share of the other source labels' held-out texts it sends to the label. */
	off_source_attack_success: number | null;
	search_attack_success: number | null;
	loss: number;
	flagged: boolean;
	/** Every candidate judged (all lengths), most suspicious first. */
	candidates: Array<{
		trigger: string;
		ids: number[];
		length: number;
		/** search: the search's own; distinct: a repeated one's distinct tokens; part: a piece of a potent one; unk: [UNK] */
		origin: Origin;
		position: TriggerPosition;
		sources: number[] | null;
		held_out: number;
		attack_success: number;
		attack_success_lower: number;
		diluted_attack_success: number;
		diluted_attack_success_lower: number;
		natural_rate: number;
		off_source_attack_success: number | null;
		flagged: boolean;
	}>;
	/** The continuous search (reported, not judged on): loss, relaxed attack success, nearest tokens. */
	embedding: { loss: number; attack_success: number; norms: number[]; nearest: string[] };
}

export interface TextBackdoorReport {
	verdict: "clean" | "suspect";
	suspect_classes: number[];
	reasons: string[];
	model: { sha256: string; num_classes: number; vocab: number; dim: number; inputs: string[] };
	data: { sha256: string; texts: number; search: number; held_out: number; clean_accuracy: number };
	policy: TextTriggerPolicy;
	labels: TextTriggerReport[];
	/**
	 * What this reference data cannot show, in words (empty when nothing): e.g. source labels too small for a
	 * source-specific trigger to pass the verdict even at 100% — the verdict is then blind to such a backdoor.
	 */
	limits: string[];
	provider: Device;
	timings: { total_ms: number; token_search_ms: number };
}

/**
 * The fewest held-out texts of one source label on which a trigger could pass when judged on that label alone
 * (every text sent, at the Bonferroni level over `sources` labels); undefined above 10,000.
 */
export function textsToJudgeOneSource(policy: TextTriggerPolicy, sources: number): number | undefined {
	const level = 1 - (1 - policy.confidence) / Math.max(1, sources);
	for (let n = policy.minHeldOut; n <= 10_000; n++) if (wilsonLower(n, n, level) >= policy.asrThreshold) return n;
	return undefined;
}

/**
 * The (label, source label) pairs the search gives a trial of their own: those whose source label has held-out texts
 * enough to be judged alone (a pair the verdict cannot flag is not worth a search), at most `maxSourcePairs`, in
 * label order; `skipped` the pairs left out by that cap.
 */
export function sourcePairs(
	policy: TextTriggerPolicy,
	heldPools: readonly (readonly number[])[],
	heldLabels: readonly number[],
): { pairs: [number, number][]; skipped: number } {
	const K = heldPools.length;
	const needed = textsToJudgeOneSource(policy, K - 1);
	if (needed === undefined) return { pairs: [], skipped: 0 };
	const all: [number, number][] = [];
	for (const [k, pool] of heldPools.entries())
		for (let s = 0; s < K; s++)
			if (s !== k && pool.filter((i) => heldLabels[i] === s).length >= needed) all.push([k, s]);
	return { pairs: all.slice(0, policy.maxSourcePairs), skipped: Math.max(0, all.length - policy.maxSourcePairs) };
}

/** The limits of what `held` (the held-out texts, by label) lets the verdict see, and what the search left out. */
function coverageLimits(
	policy: TextTriggerPolicy,
	heldLabels: readonly number[],
	numClasses: number,
	skippedPairs: number,
): string[] {
	const perLabel = Array.from({ length: numClasses }, (_, k) => heldLabels.filter((y) => y === k).length);
	const needed = textsToJudgeOneSource(policy, numClasses - 1);
	const limits: string[] = [];
	if (needed !== undefined && perLabel.some((n) => n < needed)) {
		const short = perLabel.flatMap((n, k) => (n < needed ? [`${k} (${n})`] : []));
		limits.push(
			`source-specific triggers: a source label is judged alone only with at least ${needed} held-out texts (${numClasses - 1} source labels at confidence ${policy.confidence}); labels ${short.join(", ")} have fewer, so a backdoor that fires from one of them only cannot be found: give about ${2 * needed} reference texts per label (half are held out)`,
		);
	}
	if (skippedPairs > 0)
		limits.push(
			`source-specific triggers: ${skippedPairs} (label, source label) pairs got no search trial of their own (policy maxSourcePairs ${policy.maxSourcePairs}): a backdoor from one of those sources is searched only among all sources' texts`,
		);
	return limits;
}

export interface TextScanOptions {
	policy: TextTriggerPolicy;
	device: Device;
	threads?: number;
	log?: (line: string) => void;
	onProgress?: (p: { stage: string; done: number; total: number }) => void;
}

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** A token or trigger as a reader sees it: invisible and control characters written as \uXXXX. */
export function visible(s: string): string {
	return s.replace(
		/[\p{Cf}\p{Cc}\p{Zl}\p{Zp}\u00a0\u3000]/gu,
		(c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, "0")}`,
	);
}

type Origin = "search" | "distinct" | "part" | "order" | "unk";

/** A trigger's words: each a word-start token and the continuation pieces after it. */
function wordsOf(ids: readonly number[], notFirst: ReadonlySet<number>): number[][] {
	const words: number[][] = [];
	for (const id of ids) {
		const last = words[words.length - 1];
		if (last !== undefined && notFirst.has(id)) last.push(id);
		else words.push([id]);
	}
	return words;
}

/** Every ordering of `items` but the one given (Heap's algorithm; callers keep `items` short). */
export function otherOrders<T>(items: readonly T[]): T[][] {
	const out: T[][] = [];
	const a = [...items];
	const c = new Array<number>(a.length).fill(0);
	for (let i = 1; i < a.length; ) {
		if ((c[i] as number) < i) {
			const j = i % 2 === 0 ? 0 : (c[i] as number);
			[a[j], a[i]] = [a[i] as T, a[j] as T];
			out.push([...a]);
			c[i] = (c[i] as number) + 1;
			i = 1;
		} else c[i++] = 0;
	}
	return out;
}

/**
 * A multi-word trigger the search found, not flagged as found and at least this potent on held-out texts, is also
 * judged in its words' other orders: the relaxed search scores a set of words, not their order, so a phrase backdoor
 * can come out in the wrong order ("weather very" for "very weather").
 */
const ORDER_MIN_RATE = 0.5;
/** … when it has at most this many words (3: five more orders) */
const ORDER_MAX_WORDS = 3;

interface Judged {
	ids: number[];
	length: number;
	origin: Origin;
	/** null for a trigger the search did not produce itself */
	search: number | null;
	position: TriggerPosition;
	sources: number[] | null;
	n: number;
	held: number;
	heldLower: number;
	diluted: number;
	dilutedLower: number;
	natural: number;
	/** judged on source labels alone: the share of the other source labels' held-out texts it sends (null: all sources) */
	offSource: number | null;
	/** a pair trial's find (or derived from one): judged from this source label alone (null: as every other) */
	only: number | null;
	loss: number;
	flagged: boolean;
	/** how far the weaker of the two lower bounds clears its threshold (negative: short of it) */
	margin: number;
}

/** Each text followed by the next two texts of its label (its [SEP] and their [CLS] dropped), cut to `length`. */
function dilute(t: TokenizedTexts, length: number): TokenizedTexts {
	const byLabel = new Map<number, number[]>();
	for (const [i, y] of t.labels.entries()) byLabel.set(y, [...(byLabel.get(y) ?? []), i]);
	const seqs = t.seqs.map((s, i) => {
		const same = byLabel.get(t.labels[i] as number) as number[];
		const at = same.indexOf(i);
		const next = (d: number) => t.seqs[same[(at + d) % same.length] as number] as number[];
		const joined = [...s.slice(0, -1), ...next(1).slice(1, -1), ...next(2).slice(1)];
		return joined.length <= length ? joined : [...joined.slice(0, length - 1), joined[joined.length - 1] as number];
	});
	return { seqs, labels: [...t.labels] };
}

/** Per label, the share of its texts that contain each token id, and the share of the other labels' texts that do. */
function naturalRates(t: TokenizedTexts, K: number): { own: Map<number, number>[]; elsewhere: Map<number, number>[] } {
	const counts = Array.from({ length: K }, () => new Map<number, number>());
	const sizes = new Array<number>(K).fill(0);
	const total = new Map<number, number>();
	for (const [i, y] of t.labels.entries()) {
		sizes[y] = (sizes[y] ?? 0) + 1;
		for (const id of new Set(t.seqs[i])) {
			counts[y]?.set(id, (counts[y]?.get(id) ?? 0) + 1);
			total.set(id, (total.get(id) ?? 0) + 1);
		}
	}
	const N = t.labels.length;
	const own = counts.map((m, y) => new Map([...m].map(([id, n]) => [id, n / (sizes[y] || 1)])));
	const elsewhere = counts.map((m, y) => {
		const rest = N - (sizes[y] ?? 0);
		return new Map([...m].map(([id, n]) => [id, rest > 0 ? ((total.get(id) ?? 0) - n) / rest : 0]));
	});
	return { own, elsewhere };
}

/**
 * Whether a token is the label's evidence rather than a trigger: in `maxNaturalRate` of the label's own texts, or in
 * `minSpecificRate` of them and `specificityRatio` times as often as in the other labels' texts (a class word such as
 * "bindings" for python at 11%). A backdoor trigger is rare in every label's clean texts — poisoned texts are few —
 * and a common word used as one ("however") is as frequent in the label as outside it.
 */
export function isEvidence(own: number, elsewhere: number, policy: TextTriggerPolicy): boolean {
	return own >= policy.maxNaturalRate || (own >= policy.minSpecificRate && own >= policy.specificityRatio * elsewhere);
}

/** The tokenizer's unknown-word token: the special token named so, else what a character no vocabulary holds becomes. */
function findUnk(tokenizer: TextTokenizer): number | undefined {
	for (const id of tokenizer.specialIds) if (/^(\[unk\]|<unk>)$/i.test(tokenizer.token(id))) return id;
	const ids = tokenizer.encode("\u{10fffd}");
	const inner = ids.filter((id) => id !== ids[0] && id !== ids[ids.length - 1]);
	return inner.length === 1 && tokenizer.specialIds.has(inner[0] as number) ? inner[0] : undefined;
}

type Figures = Pick<
	Judged,
	"position" | "sources" | "n" | "held" | "heldLower" | "diluted" | "dilutedLower" | "offSource" | "flagged" | "margin"
>;

/** A set of source texts a rate is judged on: every other label together, or one source label alone. */
export interface Scope {
	source: number | null;
	/** positions in the held-out and in the diluted pool of this scope's texts */
	members: [number[], number[]];
	/** the confidence level of its lower bounds */
	level: number;
}

/**
 * Every source label together at level `confidence`, and each source label with at least `minHeldOut` texts in both
 * pools alone, at a level corrected for their number (Bonferroni: any one of them passing flags the label).
 */
export function verdictScopes(
	pools: readonly (readonly number[])[],
	labels: readonly (readonly number[])[],
	policy: TextTriggerPolicy,
): Scope[] {
	const members = (which: number, s: number | null) =>
		(pools[which] as number[]).flatMap((idx, i) => (s === null || labels[which]?.[idx] === s ? [i] : []));
	const sources = [...new Set((pools[0] as number[]).map((i) => labels[0]?.[i] as number))].sort((a, b) => a - b);
	const alone = sources.filter(
		(s) => members(0, s).length >= policy.minHeldOut && members(1, s).length >= policy.minHeldOut,
	);
	const level = 1 - (1 - policy.confidence) / Math.max(1, alone.length);
	return [
		{ source: null, members: [members(0, null), members(1, null)], level: policy.confidence },
		...alone.map((s) => ({ source: s, members: [members(0, s), members(1, s)] as [number[], number[]], level })),
	];
}

const countHits = (hits: readonly boolean[], members: readonly number[]) => members.filter((i) => hits[i]).length;

/**
 * The verdict on one trigger from its hits per position on the held-out and diluted pools (diluted: undefined where not
 * run): at each position and scope, the Wilson lower bounds of the two attack successes against their thresholds. The
 * trigger counts where it works best: flagged first (all sources before one), then by how far the weaker bound clears
 * its threshold.
 */
export function verdictOf(
	tests: readonly {
		position: TriggerPosition;
		held: boolean[];
		diluted: boolean[] | undefined;
		scopes: readonly Scope[];
		/** every scope of the label (all sources together, each source alone): what the other sources' share is of */
		allScopes: readonly Scope[];
	}[],
	policy: TextTriggerPolicy,
	eligible: boolean,
	absent: boolean,
): Figures {
	// flagged first, every source together before one source
	const rank = (o: Figures) => (o.flagged ? 2 : 0) + (o.flagged && o.sources === null ? 1 : 0);
	let best: Figures | undefined;
	for (const { position, held, diluted: dh, scopes, allScopes } of tests) {
		if (dh === undefined) continue;
		// the source labels it flips on their own (held-out bound at their level clears asrThreshold): a backdoor may
		// fire from two sources, and each of them is then no "other source" of the other
		const flipped = new Set(
			allScopes
				.filter(
					(sc) =>
						sc.source !== null &&
						wilsonLower(countHits(held, sc.members[0]), sc.members[0].length, sc.level) >= policy.asrThreshold,
				)
				.flatMap((sc) => sc.members[0]),
		);
		const everySource = allScopes.find((sc) => sc.source === null)?.members[0] ?? [];
		const options = scopes.map((sc): Figures => {
			const [hm, dm] = sc.members;
			const hh = countHits(held, hm);
			// a source-specific backdoor leaves the other sources alone; a label's evidence pulls them all
			let offSource: number | null = null;
			if (sc.source !== null) {
				const inScope = new Set(hm);
				const others = everySource.filter((i) => !inScope.has(i));
				// every other source flipped too: not source-specific, they all count
				const unflipped = others.filter((i) => !flipped.has(i));
				const off = unflipped.length > 0 ? unflipped : others;
				offSource = off.length ? countHits(held, off) / off.length : 0;
			}
			const dd = countHits(dh, dm);
			const heldLower = wilsonLower(hh, hm.length, sc.level);
			const dilutedLower = wilsonLower(dd, dm.length, sc.level);
			const margin = Math.min(heldLower - policy.asrThreshold, dilutedLower - policy.dilutedThreshold);
			return {
				position,
				sources: sc.source === null ? null : [sc.source],
				n: hm.length,
				held: hm.length ? hh / hm.length : 0,
				heldLower,
				diluted: dm.length ? dd / dm.length : 0,
				dilutedLower,
				offSource,
				flagged:
					eligible &&
					margin >= 0 &&
					(sc.source === null || (absent && (offSource as number) <= policy.maxOffSourceRate)),
				margin,
			};
		});
		// a source-specific backdoor: every source label it flips at this position
		const passing = options.filter((o) => o.sources !== null && o.flagged).flatMap((o) => o.sources as number[]);
		for (const o of options) {
			if (o.flagged && o.sources !== null) o.sources = passing;
			if (best === undefined || rank(o) > rank(best) || (rank(o) === rank(best) && o.margin > best.margin)) best = o;
		}
	}
	return best as Figures;
}

/** Per label, alternate texts go to the search and the held-out half (deterministic, stratified). */
function split(
	t: TokenizedTexts,
	pred: Int32Array,
): { search: TokenizedTexts & { pred: number[] }; held: TokenizedTexts & { pred: number[] } } {
	const search = { seqs: [] as number[][], labels: [] as number[], pred: [] as number[] };
	const held = { seqs: [] as number[][], labels: [] as number[], pred: [] as number[] };
	const seen = new Map<number, number>();
	for (const [i, y] of t.labels.entries()) {
		const n = seen.get(y) ?? 0;
		seen.set(y, n + 1);
		const to = n % 2 === 0 ? search : held;
		to.seqs.push(t.seqs[i] as number[]);
		to.labels.push(y);
		to.pred.push(pred[i] as number);
	}
	return { search, held };
}

export async function scanTextBackdoor(
	modelBytes: Uint8Array,
	tokenizer: TextTokenizer,
	data: LabelledTexts,
	opts: TextScanOptions,
): Promise<TextBackdoorReport> {
	const started = Date.now();
	const policy = opts.policy;
	const model = await readOnnxModel(modelBytes);
	const info = textModelInfo(model);
	if (tokenizer.vocabSize > info.vocab)
		throw new FtguardError(
			"DATA_INVALID",
			`the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding table ${info.vocab}: not this model's tokenizer`,
		);
	const maxLength = Math.min(policy.maxLength, info.maxLength ?? policy.maxLength);
	const session = { device: opts.device, ...(opts.threads !== undefined ? { threads: opts.threads } : {}) };
	const classifier = await TextClassifier.create(modelBytes, info, { ...session, padId: tokenizer.padId });
	const runners: TextTriggerRunner[] = [];
	try {
		const seqs = data.texts.map((t) => {
			const ids = tokenizer.encode(t);
			return ids.length <= maxLength ? ids : [...ids.slice(0, maxLength - 1), ids[ids.length - 1] as number];
		});
		const all: TokenizedTexts = { seqs, labels: data.labels };
		// every class the model answers in is a candidate target, whether or not the reference texts hold one of its
		const { pred, classes: numClasses } = await classifier.classify(seqs);
		const outside = data.labels.findIndex((y) => y >= numClasses);
		if (outside >= 0)
			throw new FtguardError(
				"DATA_INVALID",
				`reference text ${outside + 1} has label ${data.labels[outside]} but the model has ${numClasses} classes`,
			);
		const cleanAccuracy = data.labels.filter((y, i) => pred[i] === y).length / data.labels.length;
		const { search, held } = split(all, pred);
		const searchPools = sourcePools(search, search.pred, numClasses);
		const heldPools = sourcePools(held, held.pred, numClasses);
		// special tokens are never searched ([UNK] is judged on its own below: as a searched token it steers the
		// relaxed search away from real words); a continuation piece never starts a trigger
		const banned = new Set<number>(tokenizer.specialIds);
		const notFirst = new Set<number>();
		for (let v = 0; v < info.vocab; v++) {
			const tok = tokenizer.token(v);
			if (v >= tokenizer.vocabSize || tok === "" || tok.startsWith("[unused")) banned.add(v);
			else if (tok.startsWith("##") && tok.length > 2) notFirst.add(v);
		}
		banned.add(tokenizer.padId);
		const unkId = findUnk(tokenizer);
		const inv: InversionOptions = {
			...DEFAULT_INVERSION,
			steps: policy.steps,
			seed: policy.seed,
			banned,
			notFirst,
			padId: tokenizer.padId,
		};
		const K = numClasses;
		for (const [k, p] of searchPools.entries())
			if (p.length === 0 || (heldPools[k]?.length ?? 0) < policy.minHeldOut)
				throw new FtguardError(
					"DATA_INVALID",
					`${heldPools[k]?.length ?? 0} correctly classified held-out reference texts outside label ${k} (${p.length} to search on): the verdict needs at least ${policy.minHeldOut} texts of other labels to stamp triggers into (half of the reference texts are held out)`,
				);
		const pairs = sourcePairs(policy, heldPools, held.labels);
		const trials: SearchTrial[] = searchTrials(search, searchPools, pairs.pairs);
		const total = policy.maxTriggerLength * policy.steps + policy.steps;
		let done = 0;
		// held-out texts made longer with two more texts of their own label: more evidence against the target
		const diluted = dilute(held, maxLength);
		const dilutedPools = sourcePools(diluted, await classifier.predict(diluted.seqs), numClasses);
		const naturalRate = naturalRates(all, K);
		const judged: Judged[][] = Array.from({ length: K }, () => []);
		const scopesOf: Scope[][] = [];
		// `only`: a trigger a pair trial found is judged from that source label alone (below)
		const judge = async (
			k: number,
			ids: number[],
			origin: Origin,
			search: number | null,
			loss: number,
			only: number | null = null,
		) => {
			if (judged[k]?.some((j) => j.ids.join() === ids.join() && j.only === only)) return;
			const rng = () => new Rng(policy.seed, 31, k);
			const pools = [heldPools[k] as number[], dilutedPools[k] as number[]];
			const natural = Math.max(...ids.map((id) => naturalRate.own[k]?.get(id) ?? 0));
			const evidence = ids.some((id) =>
				isEvidence(naturalRate.own[k]?.get(id) ?? 0, naturalRate.elsewhere[k]?.get(id) ?? 0, policy),
			);
			const eligible = new Set(ids).size === ids.length && !evidence;
			scopesOf[k] ??= verdictScopes(pools, [held.labels, diluted.labels], policy);
			// what a pair trial found is judged from its source alone: the pair trials are there for source-specific
			// triggers, and judged with every source their finds — the words that best flip one source, often the
			// label's evidence — could add every-source candidates, and with them every-source false alarms, that the
			// scan did not have before them; a trigger that flips every source is the every-source trials' to find
			const scopes = only === null ? scopesOf[k] : scopesOf[k].filter((sc) => sc.source === only);
			if (scopes.length === 0) return;
			// a one-word trigger at every position, a longer one at random positions (oneWord()); from one source alone
			// at random positions only
			const at: TriggerPosition[] = oneWord(ids, notFirst) && only === null ? [...POSITIONS] : ["random"];
			const heldHits = await stampedHits(classifier, held, pools[0] as number[], ids, k, maxLength, rng(), at);
			// a source label alone only at random positions: at a fixed position a few label words flip a whole source
			const tests = at.map((position, i) => ({
				position,
				held: heldHits[i] as boolean[],
				scopes: position === "random" ? scopes : scopes.filter((sc) => sc.source === null),
				allScopes: scopesOf[k] as Scope[],
				diluted: undefined as boolean[] | undefined,
			}));
			// the diluted texts (three times longer) only where the held-out test can pass, else where it comes closest
			const lower = tests.map((t) =>
				Math.max(
					...t.scopes.map((sc) => wilsonLower(countHits(t.held, sc.members[0]), sc.members[0].length, sc.level)),
				),
			);
			let run = tests.filter((_, i) => eligible && (lower[i] as number) >= policy.asrThreshold);
			if (run.length === 0) run = [tests[lower.indexOf(Math.max(...lower))] as (typeof tests)[number]];
			const dh = await stampedHits(
				classifier,
				diluted,
				pools[1] as number[],
				ids,
				k,
				maxLength,
				rng(),
				run.map((t) => t.position),
			);
			for (const [i, t] of run.entries()) t.diluted = dh[i];
			// judged on one source label alone, a trigger must be absent from the label's own texts: a small sample of
			// one label is flipped entirely by the target's evidence ("tryton sphinx": perl texts → python)
			const absent = natural === 0;
			judged[k]?.push({
				...verdictOf(tests, policy, eligible, absent),
				ids,
				length: ids.length,
				origin,
				search,
				natural,
				loss,
				only,
			});
		};
		let searchMs = 0; // the token search alone (graph, session, search; not the judging): bench:backdoor --text
		for (let T = 1; T <= policy.maxTriggerLength; T++) {
			const searchStarted = Date.now();
			// each label searched by SEARCH_GROUPS trials (anywhere; right after [CLS]) sharing the batch, and each
			// (label, source) pair of `pairs` by one more
			const r = await TextTriggerRunner.create(model, {
				trials: trials.length,
				batch: Math.max(1, Math.ceil(policy.batch / SEARCH_GROUPS)),
				length: maxLength,
				triggerLength: T,
				mode: "token",
				...session,
			});
			runners.push(r);
			const found = await invertTokens(r, classifier, search, searchPools, trials, inv, () =>
				opts.onProgress?.({ stage: "token search", done: ++done, total }),
			);
			searchMs += Date.now() - searchStarted;
			await r.dispose();
			runners.pop();
			for (const candidates of found)
				for (const f of candidates) {
					const k = f.target;
					await judge(k, f.tokens, "search", f.asr, f.loss, f.source);
					// a repeated token is one word's evidence counted again (clean models give way to "alien alien
					// alien"): such a trigger is judged by its distinct tokens, each once
					const distinct = [...new Set(f.tokens)];
					if (distinct.length < f.tokens.length) await judge(k, distinct, "distinct", null, f.loss, f.source);
				}
		}
		// the pieces of a potent multi-token trigger, each starting with a word-start token: which part carries it
		for (let k = 0; k < K; k++)
			for (const j of [...(judged[k] ?? [])])
				if (j.length > 1 && j.held >= policy.asrThreshold)
					for (let a = 0; a < j.length; a++)
						for (let e = a + 1; e <= j.length; e++)
							if (e - a < j.length && !notFirst.has(j.ids[a] as number))
								await judge(k, j.ids.slice(a, e), "part", null, j.loss, j.only);
		// a potent multi-word trigger's words in their other orders (a phrase found in the wrong order)
		for (let k = 0; k < K; k++)
			for (const j of [...(judged[k] ?? [])]) {
				const words = wordsOf(j.ids, notFirst);
				const searched = j.origin === "search" || j.origin === "distinct";
				if (!searched || j.flagged || words.length < 2 || words.length > ORDER_MAX_WORDS || j.held < ORDER_MIN_RATE)
					continue;
				for (const order of otherOrders(words)) await judge(k, order.flat(), "order", null, j.loss, j.only);
			}
		// [UNK]: what every out-of-vocabulary word (a homoglyph, an unseen script) becomes, judged as a trigger of its own
		if (unkId !== undefined) for (let k = 0; k < K; k++) await judge(k, [unkId], "unk", null, Number.NaN);
		const er = await TextTriggerRunner.create(model, {
			trials: K,
			batch: policy.batch,
			length: maxLength,
			triggerLength: 1,
			mode: "embedding",
			...session,
		});
		runners.push(er);
		const table = model.graph.initializers.find((t) => `model/${t.name}` === info.embedding)?.data;
		if (!(table instanceof Float32Array))
			throw new FtguardError("MODEL_UNSUPPORTED", "the word-embedding table is not float32 data");
		const emb = await invertEmbeddings(er, search, searchPools, table, inv);
		done += policy.steps;
		opts.onProgress?.({ stage: "embedding search", done, total });
		const labels: TextTriggerReport[] = Array.from({ length: K }, (_, k) => {
			// the most suspicious candidate: a flagged one first, then by how far its weaker lower bound clears its threshold
			const cands = [...(judged[k] ?? [])].sort(
				(x, y) => Number(y.flagged) - Number(x.flagged) || y.margin - x.margin || x.length - y.length,
			);
			const b = cands[0] as Judged;
			const e = emb[k] as (typeof emb)[number];
			const show = (ids: readonly number[]) => visible(tokenizer.decode([...ids]));
			return {
				label: k,
				trigger: show(b.ids),
				tokens: b.ids.map((id) => visible(tokenizer.token(id))),
				ids: b.ids,
				position: b.position,
				sources: b.sources,
				attack_success: b.held,
				held_out: b.n,
				attack_success_lower: b.heldLower,
				diluted_attack_success: b.diluted,
				diluted_attack_success_lower: b.dilutedLower,
				natural_rate: b.natural,
				off_source_attack_success: b.offSource,
				search_attack_success: b.search,
				loss: b.loss,
				flagged: b.flagged,
				candidates: cands.map((c) => ({
					trigger: show(c.ids),
					ids: c.ids,
					length: c.length,
					origin: c.origin,
					position: c.position,
					sources: c.sources,
					held_out: c.n,
					attack_success: c.held,
					attack_success_lower: c.heldLower,
					diluted_attack_success: c.diluted,
					diluted_attack_success_lower: c.dilutedLower,
					natural_rate: c.natural,
					off_source_attack_success: c.offSource,
					flagged: c.flagged,
				})),
				embedding: {
					loss: e.loss,
					attack_success: e.asr,
					norms: e.norms,
					nearest: e.nearest.map((id) => visible(tokenizer.token(id))),
				},
			};
		});
		const suspects = labels.filter((l) => l.flagged).map((l) => l.label);
		const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
		return {
			verdict: suspects.length > 0 ? "suspect" : "clean",
			suspect_classes: suspects,
			reasons: labels
				.filter((l) => l.flagged)
				.map(
					(l) =>
						`label ${l.label}: the ${l.ids.length}-token trigger "${l.trigger}" inserted at ${l.position === "random" ? "random positions" : `the ${l.position}`} sends ${pct(l.attack_success)} of ${l.held_out} held-out texts of ${l.sources === null ? "other labels" : `label ${l.sources.join(", ")}`} to it (lower bound ${pct(l.attack_success_lower)}${l.off_source_attack_success === null ? "" : `; ${pct(l.off_source_attack_success)} of the other source labels' texts`}), ${pct(l.diluted_attack_success)} of them made three times longer (lower bound ${pct(l.diluted_attack_success_lower)}), and is in ${pct(l.natural_rate)} of the label's own texts`,
				),
			model: { sha256: sha256(modelBytes), num_classes: K, vocab: info.vocab, dim: info.dim, inputs: info.inputs },
			data: {
				sha256: sha256(JSON.stringify(data)),
				texts: data.texts.length,
				search: search.seqs.length,
				held_out: held.seqs.length,
				clean_accuracy: cleanAccuracy,
			},
			policy,
			labels,
			limits: coverageLimits(policy, held.labels, K, pairs.skipped),
			provider: er.provider,
			timings: { total_ms: Date.now() - started, token_search_ms: searchMs },
		};
	} finally {
		for (const r of runners) await r.dispose();
		await classifier.dispose();
	}
}
