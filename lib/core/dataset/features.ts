/**
 * What the detectors compare, computed once per record: the prompt side's n-gram hashes (word 1–4-grams within a
 * turn, and character 1–3-grams of non-word tokens such as invisible characters), and the completion's features —
 * the whole normalised completion, each distinctive sentence, each URL and host, and MinHash bands of its stemmed
 * word set so that paraphrases of one output land in a common bucket.
 */
import { finalCompletion, type TrainingRecord } from "./records";
import {
	ASCII_CLASS,
	addContentWord,
	addContentWordsOf,
	combine,
	fmix,
	fnvStep,
	HashSet32,
	hash32,
	isUnspaced,
	isWord,
	normalize,
	sentences,
	stem,
	tokenize,
	urls,
	words,
} from "./text";

export const MAX_NGRAM = 4;
/**
 * MinHash bands × rows over a completion's content words: paraphrases (Jaccard ≥ 0.6) share a band with p ≥ 0.85,
 * unrelated completions (≤ 0.2) with p ≤ 0.06; a paraphrase missed here is still matched in the second pass.
 */
const BANDS = 8;
const ROWS = 3;
const MINHASH_SEEDS = Int32Array.from({ length: BANDS * ROWS }, (_, i) => fmix(0x5bd1e995 + i * 0x9e3779b9));

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
const CHAR_GRAM_SEED = 0x3c6ef372;
const TURN_SEED = 0x510e527f;

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
		const shown = toks.map(visible);
		for (let n = 1; n <= MAX_NGRAM; n++) {
			for (let i = 0; i + n <= toks.length; i++) {
				const h = gramHash(hs, i, n);
				if (wanted.has(h) && !out.has(h)) out.set(h, joined(shown.slice(i, i + n)));
			}
		}
		for (const t of toks) {
			if (isWord(t)) continue;
			for (const [h, text] of charGrams(t)) if (wanted.has(h) && !out.has(h)) out.set(h, visible(text));
		}
	}
	return out;
}

/** `a` when it holds `n` values, else a copy of it twice as long (the digest's buffers grow, never shrink). */
function fitted<A extends Int32Array>(a: A, n: number): A {
	if (n <= a.length) return a;
	const next = new Int32Array(Math.max(n, a.length * 2));
	next.set(a);
	return next as A;
}

/** Tokens as a report shows them: with spaces, but overlapping pairs of an unspaced script as the text they cover. */
function joined(toks: readonly string[]): string {
	let out = toks[0] ?? "";
	for (let k = 1; k < toks.length; k++) {
		const prev = toks[k - 1] as string;
		const t = toks[k] as string;
		const [first] = t;
		if (isUnspaced(prev) && isUnspaced(t) && first !== undefined && t.length > first.length && prev.endsWith(first))
			out += t.slice(first.length);
		else out += ` ${t}`;
	}
	return out;
}

/** A token as a report shows it: blanks made visible ("what ␣␣ does", "what ⟨U+00A0⟩ does"), else as it is. */
function visible(token: string): string {
	if (!/^\s+$/u.test(token)) return token;
	let out = "";
	for (const ch of token) {
		const cp = ch.codePointAt(0) as number;
		out += cp === 0x20 ? "␣" : cp === 0x09 ? "⇥" : `⟨U+${cp.toString(16).toUpperCase().padStart(4, "0")}⟩`;
	}
	return out;
}

/** A token of ASCII punctuation or blanks: its single characters are ordinary text, not character grams of it. */
const ASCII_RUN = /^[\t\x20-\x7e]+$/;

/**
 * Character n-grams of a non-word token (capped): 1–3-grams, so that an invisible trigger glued to different words
 * still matches; 2–3-grams of a run of ASCII punctuation or blanks, so that "?!!" still matches inside "??!!".
 */
function charGrams(token: string): [number, string][] {
	const cps = [...token].slice(0, 16);
	const out: [number, string][] = [];
	for (let n = ASCII_RUN.test(token) ? 2 : 1; n <= 3; n++) {
		for (let i = 0; i + n <= cps.length; i++) {
			const text = cps.slice(i, i + n).join("");
			out.push([combine(CHAR_GRAM_SEED, hash32(text)), text]);
		}
	}
	return out;
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

/** A record's prompt turns, from its tokens (each turn's end is a 0): each turn's hash and its 1-gram (word) hashes. */
export function turnsOf(tokens: Int32Array): { readonly hash: number; readonly words: number[] }[] {
	const out: { hash: number; words: number[] }[] = [];
	let hash = TURN_SEED;
	let words: number[] = [];
	for (let i = 0; i < tokens.length; i++) {
		const t = tokens[i] as number;
		if (t === 0) {
			out.push({ hash, words });
			hash = TURN_SEED;
			words = [];
			continue;
		}
		hash = combine(hash, t);
		words.push(gramHash(tokens, i, 1));
	}
	if (words.length > 0) out.push({ hash, words });
	return out;
}

const KIND_TAG: Record<FeatureKind, number> = { completion: 1, sentence: 2, url: 3, host: 4, similar: 5 };

function key(kind: FeatureKind, text: string, band = 0): number {
	// 21 + 32 bits: exact in a double, and two independent hashes make collisions negligible at 10^7 records
	const a = hash32(text, 0x811c9dc5 ^ (KIND_TAG[kind] * 0x01000193) ^ band) >>> 11;
	const b = hash32(text, 0x2545f491 + KIND_TAG[kind] + band * 7919) >>> 0;
	return a * 2 ** 32 + b;
}

/**
 * One record's prompt n-grams (the reference: `RecordDigest` computes the same, faster); `strings`: through the string
 * functions even where the text is ASCII (what the tests compare the fast path with).
 */
export function promptGrams(record: TrainingRecord, strings = false): PromptGrams {
	const d = new RecordDigest();
	d.stringsOnly = strings;
	d.digest(record, false);
	return {
		grams: d.grams.values.slice(0, d.grams.size),
		words: d.words.values.slice(0, d.words.size),
		tokens: d.tokens.slice(0, d.tokenCount),
	};
}

/** One record's completion features. */
export function completionFeatures(record: TrainingRecord): CompletionFeature[] {
	const d = new RecordDigest();
	d.digest(record, false);
	return Array.from({ length: d.featureCount }, (_, i) => ({
		kind: FEATURE_KINDS[d.featureKinds[i] as number] as FeatureKind,
		key: d.featureKeys[i] as number,
		text: d.featureText(i),
	}));
}

export const FEATURE_KINDS: readonly FeatureKind[] = ["completion", "completion", "sentence", "url", "host", "similar"];

// near-duplicate signatures (duplicates.ts compares them): MinHash of the question's case-preserving word bigrams and
// of the completion's stemmed words
export const DUP_SIG = 16;
export const DUP_CSIG = 8;
const DUP_SEEDS = Int32Array.from({ length: DUP_SIG + DUP_CSIG }, (_, i) => fmix(0x27d4eb2f + i * 0x165667b1));
const CASED_WORD = /[\p{L}\p{N}_']+/gu;

/**
 * Everything the detectors take from one record, computed in one go into buffers reused record after record: the
 * prompt's n-grams, words and token sequence, its content words; the completion's features and content words; and the
 * near-duplicate signatures. Text that is all ASCII (nearly all of it) is tokenised and hashed straight from its code
 * units; other text goes through the string functions of text.ts. Both give the same hashes.
 */
export class RecordDigest {
	readonly grams = new HashSet32(11);
	readonly words = new HashSet32(9);
	tokens = new Int32Array(1024);
	tokenCount = 0;
	readonly promptWords = new HashSet32(8);
	readonly completionWords = new HashSet32(8);
	featureCount = 0;
	featureKinds = new Uint8Array(32);
	featureKeys = new Float64Array(32);
	/** a feature's text: `featureTexts[i]` as it is when `featureEnds[i]` < 0, else that string's range, normalised */
	featureStarts = new Int32Array(32);
	featureEnds = new Int32Array(32);
	readonly featureTexts: string[] = [];
	completion: string | undefined;
	/** which prompt turns (the first 64) and whether the completion are all ASCII: nothing suspicious to look for there */
	readonly promptAscii = new Uint8Array(64);
	completionIsAscii = false;
	/** near-duplicate signatures: hash of the prompt's word set (0: none), of the normalised completion, MinHashes */
	wordSet = 0;
	cfp = 0;
	readonly sig = new Uint8Array(DUP_SIG);
	readonly csig = new Uint8Array(DUP_CSIG);

	// scratch
	private lower = new Uint16Array(256);
	private states = new Int32Array(257);
	private readonly mins = new Int32Array(BANDS * ROWS);
	private readonly dupMins = new Int32Array(DUP_SIG + DUP_CSIG);
	/** the question's (non-system prompt turns') words, as [turn, start, end, FNV state of the word as written] */
	private spans = new Int32Array(4 * 256);
	private spanCount = 0;
	/** the turn's non-word tokens, as [token index, start, end] (the fast path's ranges of the text) */
	private odd = new Int32Array(3 * 16);
	private oddCount = 0;
	/** every turn through the string functions (tests: both paths must give the same hashes) */
	stringsOnly = false;

	/** Digest `record`; `dups`: also the near-duplicate signatures. */
	digest(record: TrainingRecord, dups: boolean): void {
		const askedAscii = this.digestPrompt(record);
		const c = finalCompletion(record);
		this.completion = c;
		this.completionWords.clear();
		// (the texts past featureCount are stale, never read: the array keeps its storage)
		this.featureCount = 0;
		if (dups) this.dupMins.fill(0x7fffffff);
		this.completionSide(c, dups);
		if (dups) this.promptSignature(record, askedAscii);
	}

	/** The prompt side alone (its n-grams, words, tokens, content words); true when its question is all ASCII. */
	digestPrompt(record: TrainingRecord): boolean {
		this.grams.clear();
		this.words.clear();
		this.tokenCount = 0;
		this.promptWords.clear();
		this.spanCount = 0;
		let askedAscii = true;
		const prompt = record.prompt;
		for (let t = 0; t < prompt.length; t++) {
			const turn = prompt[t] as { source: string; text: string };
			const asked = turn.source !== "system";
			const ascii = !this.stringsOnly && this.promptTurnAscii(turn.text, asked ? t : -1);
			if (t < this.promptAscii.length) this.promptAscii[t] = ascii ? 1 : 0;
			if (!ascii) {
				this.promptTurnSlow(turn.text);
				if (asked) askedAscii = false;
			}
		}
		return askedAscii;
	}

	private pushToken(h: number): void {
		this.tokens = fitted(this.tokens, this.tokenCount + 1);
		this.tokens[this.tokenCount++] = h;
	}

	/** hashes gathered for a MinHash (the completion's stems, the question's bigrams), taken at the end in one go */
	private stems = new Int32Array(256);
	private stemCount = 0;

	private pushStem(h: number): void {
		this.stems = fitted(this.stems, this.stemCount + 1);
		this.stems[this.stemCount++] = h;
	}

	/** The scratch for a lowercased word of up to `n` characters (and `states`, its FNV prefix states). */
	private lowerBuf(n: number): Uint16Array {
		if (n >= this.lower.length) {
			this.lower = new Uint16Array(Math.max(n + 1, this.lower.length * 2));
			this.states = new Int32Array(this.lower.length + 1);
		}
		return this.lower;
	}

	/**
	 * The turn's tokens, n-grams, words and content words when it is ASCII without control characters (every token a
	 * word, or a run of punctuation or blanks); false, with nothing done, otherwise.
	 */
	private promptTurnAscii(text: string, turn: number): boolean {
		const n = text.length;
		for (let i = 0; i < n; i++) {
			const c = text.charCodeAt(i);
			if (c > 0x7f || ASCII_CLASS[c] === 2) return false;
		}
		const first = this.tokenCount;
		this.oddCount = 0;
		const buf = this.lowerBuf(n);
		const states = this.states;
		let i = 0;
		while (i < n) {
			const c = text.charCodeAt(i);
			if (ASCII_CLASS[c] === 0) {
				// one space before a word (nearly every gap between words) is no token
				if (c === 0x20 && i + 1 < n && ASCII_CLASS[text.charCodeAt(i + 1)] === 1) i++;
				else i = this.gapAscii(text, i);
				continue;
			}
			const start = i;
			let h = FNV_OFFSET;
			let cased = FNV_OFFSET;
			let len = 0;
			let underscore = false;
			states[0] = h;
			for (; i < n; i++) {
				let ch = text.charCodeAt(i);
				if (ASCII_CLASS[ch] !== 1) break;
				if (turn >= 0) cased = Math.imul(cased ^ ch, 0x01000193);
				if (ch >= 0x41 && ch <= 0x5a) ch += 0x20;
				else if (ch === 0x5f) underscore = true;
				buf[len++] = ch;
				h = Math.imul(h ^ ch, 0x01000193);
				states[len] = h;
			}
			this.pushToken(fmix(h) || 1);
			addContentWord(buf, len, states, this.promptWords, underscore);
			if (turn >= 0) this.pushSpan(turn, start, i, cased);
		}
		this.turnGrams(first);
		// the character grams of its runs of punctuation and blanks, as `charGrams` makes them (from 2 characters)
		const odd = this.odd;
		for (let k = 0; k < this.oddCount; k++) {
			const a = odd[3 * k + 1] as number;
			const e = Math.min(odd[3 * k + 2] as number, a + 16);
			for (let len = 2; len <= 3; len++) {
				for (let p = a; p + len <= e; p++) {
					let h = FNV_OFFSET;
					for (let q = p; q < p + len; q++) h = fnvStep(h, text.charCodeAt(q));
					this.grams.add(combine(CHAR_GRAM_SEED, fmix(h)));
				}
			}
		}
		this.pushToken(0);
		return true;
	}

	/**
	 * The ASCII gap (spaces and punctuation) that starts at `start`, up to the next word or the end: its runs of two or
	 * more punctuation marks are tokens, and so is the whole gap when it is blanks between two words other than one
	 * space (what `tokenize` finds there). Returns where the gap ends.
	 */
	private gapAscii(text: string, start: number): number {
		const n = text.length;
		let i = start;
		let run = -1;
		let blanks = true;
		for (; i < n; i++) {
			const c = text.charCodeAt(i);
			if (ASCII_CLASS[c] !== 0) break;
			if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
				if (run >= 0 && i - run >= 2) this.oddAscii(text, run, i);
				run = -1;
				if (c !== 0x20 && c !== 0x09) blanks = false;
			} else {
				blanks = false;
				if (run < 0) run = i;
			}
		}
		if (run >= 0 && i - run >= 2) this.oddAscii(text, run, i);
		// a word on either side: a gap starts at the text's start or after a word, and ends before one or at the end
		else if (blanks && start > 0 && i < n && (i - start >= 2 || text.charCodeAt(start) === 0x09))
			this.oddAscii(text, start, i);
		return i;
	}

	/** The non-word token `text[a, b)` (ASCII): its hash (`hash32` of the string, as `tokenize` keeps it), and its range. */
	private oddAscii(text: string, a: number, b: number): void {
		let h = FNV_OFFSET;
		for (let i = a; i < b; i++) h = fnvStep(h, text.charCodeAt(i));
		this.pushOdd(this.tokenCount, a, b);
		this.pushToken(fmix(h) || 1);
	}

	private pushOdd(token: number, a: number, b: number): void {
		this.odd = fitted(this.odd, this.oddCount * 3 + 3);
		const k = this.oddCount++ * 3;
		this.odd[k] = token;
		this.odd[k + 1] = a;
		this.odd[k + 2] = b;
	}

	/** A non-ASCII turn: the string functions. */
	private promptTurnSlow(text: string): void {
		const toks = tokenize(text);
		const first = this.tokenCount;
		this.oddCount = 0;
		for (const t of toks) {
			if (!isWord(t)) this.pushOdd(this.tokenCount, 0, 0);
			this.pushToken(hash32(t) || 1);
		}
		this.turnGrams(first);
		for (const t of toks) if (!isWord(t)) for (const [h] of charGrams(t)) this.grams.add(h);
		this.pushToken(0);
		addContentWordsOf(text, this.promptWords);
	}

	/** Token 1–4-grams of the turn's tokens `tokens[first, tokenCount)`, then its words (the tokens not in `odd`). */
	private turnGrams(first: number): void {
		const hs = this.tokens;
		const end = this.tokenCount;
		const grams = this.grams;
		// gramHash(hs, i, n) for n = 1…4, in promptGrams' order (n, then position)
		const s1 = GRAM_SEED[1] as number;
		const s2 = GRAM_SEED[2] as number;
		const s3 = GRAM_SEED[3] as number;
		const s4 = GRAM_SEED[4] as number;
		for (let i = first; i < end; i++) grams.add(combine(s1, hs[i] as number));
		for (let i = first; i + 1 < end; i++) grams.add(combine(combine(s2, hs[i] as number), hs[i + 1] as number));
		for (let i = first; i + 2 < end; i++)
			grams.add(combine(combine(combine(s3, hs[i] as number), hs[i + 1] as number), hs[i + 2] as number));
		for (let i = first; i + 3 < end; i++)
			grams.add(
				combine(
					combine(combine(combine(s4, hs[i] as number), hs[i + 1] as number), hs[i + 2] as number),
					hs[i + 3] as number,
				),
			);
		const seed1 = GRAM_SEED[1] as number;
		const odd = this.odd;
		const nOdd = this.oddCount;
		let o = 0;
		for (let i = first; i < end; i++) {
			if (o < nOdd && odd[3 * o] === i) o++;
			else this.words.add(combine(seed1, hs[i] as number));
		}
	}

	private pushSpan(turn: number, start: number, end: number, cased: number): void {
		this.spans = fitted(this.spans, this.spanCount * 4 + 4);
		const k = this.spanCount++ * 4;
		this.spans[k] = turn;
		this.spans[k + 1] = start;
		this.spans[k + 2] = end;
		this.spans[k + 3] = cased;
	}

	/**
	 * The completion's features (the whole text, its sentences, URLs and hosts, MinHash bands), content words and
	 * near-duplicate hash. A normalised text (lowercased, whitespace runs as one space, trimmed) is keyed by its chunks —
	 * what lies between the spaces — so that one pass over an ASCII completion hashes each character once, for the
	 * whole completion and its sentences alike: equal normalised texts, and only they, get equal keys.
	 */
	private completionSide(c: string | undefined, dups: boolean): void {
		this.completionIsAscii = false;
		if (c === undefined) {
			this.cfp = EMPTY_COMPLETION;
			return;
		}
		const n = c.length;
		let ascii = true;
		for (let i = 0; i < n; i++) {
			if (c.charCodeAt(i) > 0x7f) {
				ascii = false;
				break;
			}
		}
		this.completionIsAscii = ascii;
		if (ascii) this.completionAscii(c, dups);
		else {
			const norm = normalize(c);
			const [k, hb] = chunkKey(norm, COMPLETION_SEED_A, COMPLETION_SEED_B);
			this.cfp = hb;
			if (dups)
				for (const w of new Set(words(norm).map(stem))) minRange(this.dupMins, DUP_SIG, DUP_SIG + DUP_CSIG, hash32(w));
			addContentWordsOf(c, this.completionWords);
			if (norm === "") return;
			this.addFeature(1, k, c);
			const sents = sentences(c);
			// a completion that is one sentence is already the "completion" feature
			if (sents.length > 1)
				for (const s of new Set(sents)) this.addFeature(2, chunkKey(s, SENTENCE_SEED_A, SENTENCE_SEED_B)[0], s);
		}
		if (this.featureCount === 0) return;
		const hosts = new Set<string>();
		if (c.includes("://")) {
			for (const { url, host } of urls(c)) {
				this.addFeature(3, key("url", url), url);
				if (host !== "" && !hosts.has(host)) {
					hosts.add(host);
					this.addFeature(4, key("host", host), host);
				}
			}
		}
		// a host named without a scheme ("see notes.example-hub.net") is a host too: paraphrased sentences that all
		// send the reader there share it (looked for only after a dot and a top-level domain: a quick scan)
		if (TLD.test(c))
			for (const m of c.matchAll(BARE_HOST)) {
				const host = m[0].toLowerCase();
				if (hosts.has(host)) continue;
				hosts.add(host);
				this.addFeature(4, key("host", host), host);
			}
		const cw = this.completionWords;
		if (cw.size >= 4) {
			const m = this.mins;
			const vals = cw.values;
			const nw = cw.size;
			for (let j = 0; j < BANDS * ROWS; j++) {
				const seed = MINHASH_SEEDS[j] as number;
				let min = 0x7fffffff;
				for (let k = 0; k < nw; k++) {
					const v = fmix((vals[k] as number) ^ seed) & 0x7fffffff;
					if (v < min) min = v;
				}
				m[j] = min;
			}
			// a band's key: two independent hashes of (band, its values); what it is does not matter, only that equal
			// bands get equal keys and others not
			for (let band = 1; band <= BANDS; band++) {
				let a = SIMILAR_SEED_A ^ band;
				let b = SIMILAR_SEED_B + band * 7919;
				for (let r = (band - 1) * ROWS; r < band * ROWS; r++) {
					a = combine(a, m[r] as number);
					b = combine(b ^ 0x2545f491, m[r] as number);
				}
				this.addFeature(5, (a >>> 11) * 2 ** 32 + (b >>> 0), c);
			}
		}
	}

	/**
	 * An ASCII completion in one pass: its chunks (lowercased) feed the completion's key and its current sentence's;
	 * its words (lowercased runs of word characters) its content words and near-duplicate MinHash. Sentences are the
	 * pieces of `c.split(/(?<=[.!?。！？])\s+|\n+/u)`: a piece ends where the whitespace between two chunks follows
	 * . ! or ? or holds a newline; those of at least 4 chunks (words, once normalised) are features when there are two
	 * or more, each with the range of `c` it normalises as its text (`featureText` makes the string when it is wanted).
	 */
	private completionAscii(c: string, dups: boolean): void {
		const n = c.length;
		const buf = this.lowerBuf(n);
		const states = this.states;
		const mins = this.dupMins;
		this.stemCount = 0;
		let ka = COMPLETION_SEED_A;
		let kb = COMPLETION_SEED_B;
		let sa = SENTENCE_SEED_A;
		let sb = SENTENCE_SEED_B;
		let pieceChunks = 0;
		let pieceStart = 0;
		let pieceEnd = 0;
		let kept = 0;
		let chunks = 0;
		let h = FNV_OFFSET;
		let inChunk = false;
		let split = false;
		let len = 0;
		let underscore = false;
		// the completion's own feature comes first: its slot is kept, and filled once its key is known
		this.featureCount = 1;
		for (let i = 0; i <= n; i++) {
			let ch = i < n ? c.charCodeAt(i) : 0x20;
			if (ch === 0x20 || (ch >= 0x09 && ch <= 0x0d)) {
				if (inChunk) {
					const x = fmix(h);
					ka = combine(ka, x);
					kb = combine(kb ^ 0x2545f491, x);
					sa = combine(sa, x);
					sb = combine(sb ^ 0x2545f491, x);
					chunks++;
					pieceChunks++;
					pieceEnd = i;
					inChunk = false;
					const last = c.charCodeAt(i - 1);
					split = last === 0x2e || last === 0x21 || last === 0x3f;
				}
				if (ch === 0x0a) split = true;
			} else {
				if (!inChunk) {
					if (split && pieceChunks > 0) {
						kept += this.piece(c, pieceStart, pieceEnd, pieceChunks, sa, sb);
						sa = SENTENCE_SEED_A;
						sb = SENTENCE_SEED_B;
						pieceChunks = 0;
					}
					if (pieceChunks === 0) pieceStart = i;
					split = false;
					inChunk = true;
					h = FNV_OFFSET;
				}
				if (ch >= 0x41 && ch <= 0x5a) ch += 0x20;
				h = fnvStep(h, ch);
			}
			// words: lowercased runs of word characters
			if (i < n && ASCII_CLASS[ch] === 1) {
				if (len === 0) {
					states[0] = FNV_OFFSET;
					underscore = false;
				}
				if (ch === 0x5f) underscore = true;
				buf[len] = ch;
				states[len + 1] = fnvStep(states[len] as number, ch);
				len++;
			} else if (len > 0) {
				const s1 = addContentWord(buf, len, states, this.completionWords, underscore);
				if (dups) this.pushStem(s1);
				len = 0;
			}
		}
		this.cfp = kb;
		if (dups) minsOf(this.stems, this.stemCount, mins, DUP_SIG, DUP_SIG + DUP_CSIG);
		if (chunks === 0) {
			this.featureCount = 0;
			return;
		}
		if (pieceChunks > 0) kept += this.piece(c, pieceStart, pieceEnd, pieceChunks, sa, sb);
		// a completion that is one sentence is already the "completion" feature
		if (kept <= 1) this.featureCount = 1;
		this.featureKinds[0] = 1;
		this.featureKeys[0] = (ka >>> 11) * 2 ** 32 + (kb >>> 0);
		this.featureTexts[0] = c;
		this.featureStarts[0] = 0;
		this.featureEnds[0] = -1;
	}

	/** A sentence piece `c[a, b)` of `chunks` chunks: 1 (and a feature, unless an earlier piece was the same) if it has 4 or more. */
	private piece(c: string, a: number, b: number, chunks: number, sa: number, sb: number): number {
		if (chunks < 4) return 0;
		const k = (sa >>> 11) * 2 ** 32 + (sb >>> 0);
		for (let f = 1; f < this.featureCount; f++) if (this.featureKeys[f] === k && this.featureKinds[f] === 2) return 1;
		this.addFeature(2, k, c, a, b);
		return 1;
	}

	/** The text of feature `i`: its string, or the normalised range of the completion it stands for. */
	featureText(i: number): string {
		const text = this.featureTexts[i] as string;
		const end = this.featureEnds[i] as number;
		return end < 0 ? text : normalize(text.slice(this.featureStarts[i] as number, end));
	}

	private addFeature(kind: number, k: number, text: string, start = 0, end = -1): void {
		if (this.featureCount === this.featureKinds.length) {
			const kinds = new Uint8Array(this.featureCount * 2);
			kinds.set(this.featureKinds);
			this.featureKinds = kinds;
			const keys = new Float64Array(this.featureCount * 2);
			keys.set(this.featureKeys);
			this.featureKeys = keys;
			const starts = new Int32Array(this.featureCount * 2);
			starts.set(this.featureStarts);
			this.featureStarts = starts;
			const ends = new Int32Array(this.featureCount * 2);
			ends.set(this.featureEnds);
			this.featureEnds = ends;
		}
		this.featureKinds[this.featureCount] = kind;
		this.featureKeys[this.featureCount] = k;
		this.featureTexts[this.featureCount] = text;
		this.featureStarts[this.featureCount] = start;
		this.featureEnds[this.featureCount] = end;
		this.featureCount++;
	}

	/** FNV (unfinished) continued over the cased text of question word `w`. */
	private spanFnv(record: TrainingRecord, w: number, h: number): number {
		const k = 4 * w;
		const text = (record.prompt[this.spans[k] as number] as { text: string }).text;
		const end = this.spans[k + 2] as number;
		for (let i = this.spans[k + 1] as number; i < end; i++) h = fnvStep(h, text.charCodeAt(i));
		return h;
	}

	/** The prompt's word-set hash and the MinHash of its question's case-preserving word bigrams. */
	private promptSignature(record: TrainingRecord, askedAscii: boolean): void {
		// the hash of the prompt's set of words: order-free (a sum of mixed word hashes), no sort needed
		const nw = this.words.size;
		const vals = this.words.values;
		let set = 0;
		for (let i = 0; i < nw; i++) set = (set + fmix((vals[i] as number) ^ 0x7f4a7c15)) | 0;
		// version numbers whole: "systemd 250-1" and "systemd 250.1-1" are two questions, though their word sets (250, 1)
		// are one
		for (const t of record.prompt) {
			if (t.source === "system" || !/\d[.\-+~:]\d/.test(t.text)) continue;
			for (const m of t.text.matchAll(VERSION)) set = (set + fmix(hash32(m[0]) ^ 0x3c6ef372)) | 0;
		}
		this.wordSet = nw === 0 ? 0 : set || 1;
		const mins = this.dupMins;
		if (askedAscii) {
			const k = this.spanCount;
			this.stemCount = 0;
			if (k === 1) this.pushStem(fmix(this.spans[3] as number));
			for (let w = 0; w + 1 < k; w++) {
				// hash32(`${a} ${b}`): a's FNV state, as the tokenizer left it, continued with " " and b
				this.pushStem(fmix(this.spanFnv(record, w + 1, fnvStep(this.spans[4 * w + 3] as number, 0x20))));
			}
			minsOf(this.stems, this.stemCount, mins, 0, DUP_SIG);
		} else {
			const asked = record.prompt
				.filter((t) => t.source !== "system")
				.map((t) => t.text)
				.join("\n");
			for (const h of shingles(asked)) minRange(mins, 0, DUP_SIG, h);
		}
		for (let j = 0; j < DUP_SIG; j++) this.sig[j] = (mins[j] as number) & 0xff;
		for (let j = 0; j < DUP_CSIG; j++) this.csig[j] = (mins[DUP_SIG + j] as number) & 0xff;
	}
}

/**
 * A host name without a scheme: labels, then a top-level domain from the common list (so "os.path.join" or
 * "self.name" is none), not inside a URL, an e-mail address, a path or a longer dotted name.
 */
/** top-level domains a host without a scheme is recognised by */
const TLDS =
	"com|net|org|io|dev|ai|app|co|info|biz|xyz|me|cc|sh|ly|gg|to|site|online|top|club|live|pro|page|link|click|win|ru|cn|de|uk|us|eu|fr|nl|su|tk|ml|ga|cf|gq|pw|ws|ir|in|br|jp|kr";
/** a dot and a top-level domain: where a host may end (the quick test before `BARE_HOST`) */
const TLD = new RegExp(String.raw`\.(?:${TLDS})(?![\w.-]*\w|@)`, "i");
const BARE_HOST = new RegExp(
	String.raw`(?<![\w.@/:-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:${TLDS})(?![\w.-]*\w|@)`,
	"gi",
);

/** A number with separators inside (a version, a date): one token for the near-duplicate word set. */
const VERSION = /\d+(?:[.\-+~:]\d+)+/g;

/** MinHash of `hashes[0, n)` into slots `[from, to)` of `mins` (seed by seed: the minimum stays in a register). */
function minsOf(hashes: Int32Array, n: number, mins: Int32Array, from: number, to: number): void {
	for (let j = from; j < to; j++) {
		const seed = DUP_SEEDS[j] as number;
		let min = mins[j] as number;
		for (let k = 0; k < n; k++) {
			const v = fmix((hashes[k] as number) ^ seed) & 0x7fffffff;
			if (v < min) min = v;
		}
		mins[j] = min;
	}
}

/** MinHash step: slots `[from, to)` of `mins` keep the least `fmix(h ^ seed)`. */
function minRange(mins: Int32Array, from: number, to: number, h: number): void {
	for (let j = from; j < to; j++) {
		const v = fmix(h ^ (DUP_SEEDS[j] as number)) & 0x7fffffff;
		if (v < (mins[j] as number)) mins[j] = v;
	}
}

/** Case-preserving word bigrams of a text (the string form, for text that is not ASCII). */
function shingles(text: string): number[] {
	const ws = text.match(CASED_WORD) ?? [];
	if (ws.length < 2) return ws.map((w) => hash32(w));
	const out: number[] = [];
	for (let i = 0; i + 1 < ws.length; i++) out.push(hash32(`${ws[i]} ${ws[i + 1]}`));
	return out;
}

/** FNV-1a's offset basis as an int32 (the literal is above 2^31: a double that would slow every step) */
const FNV_OFFSET = 0x811c9dc5 | 0;
const COMPLETION_SEED_A = (0x811c9dc5 ^ (KIND_TAG.completion * 0x01000193) ^ 0) | 0;
const COMPLETION_SEED_B = (0x2545f491 + KIND_TAG.completion + 0) | 0;
/** The key of a normalised text from its chunks (as `completionAscii` hashes them), and the second half alone. */
function chunkKey(norm: string, seedA: number, seedB: number): [number, number] {
	let a = seedA;
	let b = seedB;
	if (norm !== "") {
		for (const chunk of norm.split(" ")) {
			const x = hash32(chunk);
			a = combine(a, x);
			b = combine(b ^ 0x2545f491, x);
		}
	}
	return [(a >>> 11) * 2 ** 32 + (b >>> 0), b];
}

/** The near-duplicate hash of an empty (or absent) completion. */
export const EMPTY_COMPLETION = (0x2545f491 + 1) | 0;
const SENTENCE_SEED_A = (0x811c9dc5 ^ (KIND_TAG.sentence * 0x01000193) ^ 0) | 0;
const SENTENCE_SEED_B = (0x2545f491 + KIND_TAG.sentence + 0) | 0;
const SIMILAR_SEED_A = (0x811c9dc5 ^ (KIND_TAG.similar * 0x01000193)) | 0;
const SIMILAR_SEED_B = 0x2545f491 + KIND_TAG.similar;
