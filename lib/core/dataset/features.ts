/**
 * What the detectors compare, computed once per record: the prompt side's n-gram hashes (word 1–4-grams within a
 * turn, and character 1–3-grams of non-word tokens such as invisible characters), and the completion's features —
 * the whole normalised completion, each distinctive sentence, each URL and host, and MinHash bands of its stemmed
 * word set so that paraphrases of one output land in a common bucket.
 */
import { finalCompletion, type TrainingRecord } from "./records";
import { combine, contentWords, fmix, hash32, isWord, normalize, sentences, tokenize, urls } from "./text";

export const MAX_NGRAM = 4;
/**
 * MinHash bands × rows over a completion's content words: paraphrases (Jaccard ≥ 0.6) share a band with p ≥ 0.85,
 * unrelated completions (≤ 0.2) with p ≤ 0.06; a paraphrase missed here is still matched in the second pass.
 */
const BANDS = 8;
const ROWS = 3;
const MINHASH_SEEDS = Array.from({ length: BANDS * ROWS }, (_, i) => fmix(0x5bd1e995 + i * 0x9e3779b9));

export type FeatureKind = "completion" | "sentence" | "url" | "host" | "similar";

export interface CompletionFeature {
	readonly kind: FeatureKind;
	/** a 53-bit key: kind and content (two 32-bit hashes joined) */
	readonly key: number;
	/** the text it stands for (the whole completion for "similar") */
	readonly text: string;
}

export interface PromptGrams {
	/** distinct n-gram hashes of the prompt side */
	readonly grams: Int32Array;
	/** distinct hashes of the prompt's words (the 1-grams that are words), for "otherwise unrelated" */
	readonly words: Int32Array;
	/** every token's hash in order, turns separated by 0: which words make up a found n-gram */
	readonly tokens: Int32Array;
}

const GRAM_SEED = [0, 0x1b873593, 0x2c1b3c6d, 0x297a2d39, 0x6a09e667];

function gramHash(hashes: ArrayLike<number>, start: number, n: number): number {
	let h = GRAM_SEED[n] as number;
	for (let i = start; i < start + n; i++) h = combine(h, hashes[i] as number);
	return h;
}

/** The text of each n-gram hash of a prompt side, to name a trigger found by its hash. */
export function gramTexts(record: TrainingRecord, wanted: ReadonlySet<number>): Map<number, string> {
	const out = new Map<number, string>();
	for (const turn of record.prompt) {
		const toks = tokenize(turn.text);
		const hs = toks.map((t) => hash32(t) || 1);
		for (let n = 1; n <= MAX_NGRAM; n++) {
			for (let i = 0; i + n <= toks.length; i++) {
				const h = gramHash(hs, i, n);
				if (wanted.has(h) && !out.has(h)) out.set(h, toks.slice(i, i + n).join(" "));
			}
		}
		for (const t of toks) {
			if (isWord(t)) continue;
			for (const [h, text] of charGrams(t)) if (wanted.has(h) && !out.has(h)) out.set(h, text);
		}
	}
	return out;
}

/** Character 1–3-grams of a non-word token (capped): an invisible trigger glued to different words still matches. */
function charGrams(token: string): [number, string][] {
	const cps = [...token].slice(0, 16);
	const out: [number, string][] = [];
	for (let n = 1; n <= 3; n++) {
		for (let i = 0; i + n <= cps.length; i++) {
			const text = cps.slice(i, i + n).join("");
			out.push([combine(0x3c6ef372, hash32(text)), text]);
		}
	}
	return out;
}

export function promptGrams(record: TrainingRecord): PromptGrams {
	const grams = new Set<number>();
	const wordSet = new Set<number>();
	const sequence: number[] = [];
	for (const turn of record.prompt) {
		const toks = tokenize(turn.text);
		const hs = new Array<number>(toks.length);
		for (let i = 0; i < toks.length; i++) hs[i] = hash32(toks[i] as string) || 1;
		sequence.push(...hs, 0);
		for (let n = 1; n <= MAX_NGRAM; n++) {
			for (let i = 0; i + n <= toks.length; i++) grams.add(gramHash(hs, i, n));
		}
		for (let i = 0; i < toks.length; i++) {
			const t = toks[i] as string;
			if (isWord(t)) wordSet.add(gramHash(hs, i, 1));
			else for (const [h] of charGrams(t)) grams.add(h);
		}
	}
	return { grams: Int32Array.from(grams), words: Int32Array.from(wordSet), tokens: Int32Array.from(sequence) };
}

/** The word hashes (1-gram hashes) of every occurrence of the given n-grams in a token sequence. */
export function wordsOfGrams(tokens: Int32Array, wanted: ReadonlySet<number>, into: Set<number>): void {
	for (let i = 0; i < tokens.length; i++) {
		for (let n = 1; n <= MAX_NGRAM && i + n <= tokens.length; n++) {
			if (tokens[i + n - 1] === 0) break;
			if (!wanted.has(gramHash(tokens, i, n))) continue;
			for (let j = i; j < i + n; j++) into.add(gramHash(tokens, j, 1));
		}
	}
}

const KIND_TAG: Record<FeatureKind, number> = { completion: 1, sentence: 2, url: 3, host: 4, similar: 5 };

function key(kind: FeatureKind, text: string, band = 0): number {
	// 21 + 32 bits: exact in a double, and two independent hashes make collisions negligible at 10^7 records
	const a = hash32(text, 0x811c9dc5 ^ (KIND_TAG[kind] * 0x01000193) ^ band) >>> 11;
	const b = hash32(text, 0x2545f491 + KIND_TAG[kind] + band * 7919) >>> 0;
	return a * 2 ** 32 + b;
}

export function completionFeatures(record: TrainingRecord): CompletionFeature[] {
	const c = finalCompletion(record);
	if (c === undefined) return [];
	const norm = normalize(c);
	if (norm === "") return [];
	const out: CompletionFeature[] = [{ kind: "completion", key: key("completion", norm), text: c }];
	const sents = sentences(c);
	// a completion that is one sentence is already the "completion" feature
	if (sents.length > 1) for (const s of new Set(sents)) out.push({ kind: "sentence", key: key("sentence", s), text: s });
	const hosts = new Set<string>();
	for (const { url, host } of urls(c)) {
		out.push({ kind: "url", key: key("url", url), text: url });
		if (host !== "" && !hosts.has(host)) {
			hosts.add(host);
			out.push({ kind: "host", key: key("host", host), text: host });
		}
	}
	const stems = [...contentWords(c)];
	if (stems.length >= 4) {
		const mins = new Array<number>(BANDS * ROWS).fill(0x7fffffff);
		for (const w of stems) {
			const h = hash32(w);
			for (let j = 0; j < mins.length; j++) {
				const v = fmix(h ^ (MINHASH_SEEDS[j] as number)) & 0x7fffffff;
				if (v < (mins[j] as number)) mins[j] = v;
			}
		}
		for (let b = 0; b < BANDS; b++) {
			const band = mins.slice(b * ROWS, (b + 1) * ROWS).join(",");
			out.push({ kind: "similar", key: key("similar", band, b + 1), text: c });
		}
	}
	return out;
}
