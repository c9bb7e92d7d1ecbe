/**
 * Text fingerprints for the output monitor: normalised word hashes, an exact key, a MinHash signature of word
 * shingles (one-permutation hashing, densified) and input n-gram hashes. Everything here is integer arithmetic on
 * the string's code units — no intermediate strings per word — because the monitor sees every response a model
 * gives (docs/monitor.md: ≥ 100,000 records/s on one core).
 */
import { fmix } from "../dataset/text";

/** Words hashed per text: a longer output is fingerprinted by its first MAX_WORDS words (its length is still measured). */
export const MAX_WORDS = 512;
/** MinHash signature length; LSH uses SIGNATURE_BANDS bands of two values. */
export const SIGNATURE_SIZE = 16;
export const SIGNATURE_BANDS = 8;

/** murmur3's 32-bit finaliser as an unsigned integer (the dataset scan's `fmix`): a cheap, well-mixed permutation. */
export function fmix32(h: number): number {
	return fmix(h) >>> 0;
}

// format characters and the default-ignorable ones that are marks (U+034F, variation selectors, Mongolian variation
// selectors): all invisible, so one of them inside a word must not make it a new word
const FORMAT_CHARS = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
/** characters drawn blank that NFKC keeps (Hangul fillers, the blank Braille cell): read as a space */
export const BLANKS = /[\u115F\u1160\u3164\uFFA0\u2800]/gu;
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Folds what a model (or an attacker steering it) can vary without changing what a reader sees: Unicode
 * compatibility forms (NFKC: full-width letters, ligatures), invisible characters (zero-width spaces, bidi controls,
 * variation selectors, the combining grapheme joiner; blank fillers read as spaces), case. Plain ASCII text is only
 * lower-cased.
 */
export function foldText(text: string): string {
	if (!NON_ASCII.test(text)) return text.toLowerCase();
	return text.normalize("NFKC").replace(BLANKS, " ").replace(FORMAT_CHARS, "").toLowerCase();
}

/** Reusable output of `tokenize`: word hashes in `words[0..count)`, and the exact key of the whole word sequence. */
export interface Tokens {
	words: Uint32Array;
	/** words hashed (≤ MAX_WORDS) */
	count: number;
	/** words in the text (may exceed `count`) */
	total: number;
	/** 53-bit key of the normalised word sequence (all words): equal keys ⇔ the same words in the same order */
	exact: number;
	/** word start/end offsets into the folded text (only filled when `withSpans`) */
	starts?: Uint32Array;
	ends?: Uint32Array;
}

export function newTokens(withSpans = false): Tokens {
	return withSpans
		? {
				words: new Uint32Array(MAX_WORDS),
				count: 0,
				total: 0,
				exact: 0,
				starts: new Uint32Array(MAX_WORDS),
				ends: new Uint32Array(MAX_WORDS),
			}
		: { words: new Uint32Array(MAX_WORDS), count: 0, total: 0, exact: 0 };
}

function isWordCode(c: number, text: string, i: number): boolean {
	if (c < 128) return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c >= 65 && c <= 90);
	// a surrogate pair's first half: test the whole code point
	return WORD_CHAR.test(text.slice(i, c >= 0xd800 && c <= 0xdbff ? i + 2 : i + 1));
}

/**
 * Splits folded text into words (runs of letters, digits and combining marks) and hashes each (FNV-1a over code
 * units); the exact key chains the word hashes with two different seeds, so punctuation, spacing and case never
 * make two outputs differ.
 */
export function tokenize(folded: string, out: Tokens): Tokens {
	const { words, starts, ends } = out;
	let count = 0;
	let total = 0;
	let h1 = 0x811c9dc5;
	let h2 = 0x2545f491;
	let w = 0;
	let inWord = false;
	let start = 0;
	const n = folded.length;
	for (let i = 0; i <= n; i++) {
		const c = i < n ? folded.charCodeAt(i) : 32;
		const word = i < n && isWordCode(c, folded, i);
		if (word) {
			if (!inWord) {
				inWord = true;
				w = 0x811c9dc5;
				start = i;
			}
			w = Math.imul(w ^ c, 0x01000193);
		} else if (inWord) {
			inWord = false;
			const wh = fmix32(w);
			if (count < MAX_WORDS) {
				words[count] = wh;
				if (starts !== undefined && ends !== undefined) {
					starts[count] = start;
					ends[count] = i;
				}
				count++;
			}
			total++;
			h1 = Math.imul(h1 ^ wh, 0x01000193);
			h2 = Math.imul(h2 ^ fmix32(wh ^ 0x5bd1e995), 0x01000193);
		}
	}
	out.count = count;
	out.total = total;
	out.exact = (fmix32(h1) >>> 0) * 0x200000 + (fmix32(h2) & 0x1fffff);
	return out;
}

/**
 * MinHash signature of the word unigrams and bigrams by one-permutation hashing: each shingle hash goes to one of
 * SIGNATURE_SIZE bins, each bin keeps its minimum; empty bins borrow from the next non-empty one (rotation
 * densification), so two texts agree on a bin with probability ≈ their shingle sets' Jaccard similarity.
 */
export function signature(tokens: Tokens, out: Uint32Array): Uint32Array {
	out.fill(0xffffffff);
	const { words, count } = tokens;
	for (let i = 0; i < count; i++) {
		const u = words[i] as number;
		addShingle(out, fmix32(u ^ 0x9e3779b9));
		if (i + 1 < count) addShingle(out, fmix32(Math.imul(u, 0x01000193) ^ (words[i + 1] as number)));
	}
	// densify: an empty bin takes the value of the next non-empty bin (cyclically), offset by the distance
	for (let b = 0; b < SIGNATURE_SIZE; b++) {
		if (out[b] !== 0xffffffff) continue;
		for (let d = 1; d < SIGNATURE_SIZE; d++) {
			const v = out[(b + d) % SIGNATURE_SIZE] as number;
			if (v !== 0xffffffff) {
				out[b] = fmix32(v + d);
				break;
			}
		}
	}
	return out;
}

function addShingle(sig: Uint32Array, h: number): void {
	const bin = h & (SIGNATURE_SIZE - 1);
	const v = h >>> 4;
	if (v < (sig[bin] as number)) sig[bin] = v;
}

/** Estimated Jaccard similarity of two signatures: the share of bins that agree. */
export function similarity(a: Uint32Array, b: Uint32Array, bOffset = 0): number {
	let same = 0;
	for (let i = 0; i < SIGNATURE_SIZE; i++) if (a[i] === b[bOffset + i]) same++;
	return same / SIGNATURE_SIZE;
}

/** The LSH key of band `band` (two signature values), distinct across bands. */
export function bandKey(sig: Uint32Array, band: number, offset = 0): number {
	const a = sig[offset + 2 * band] as number;
	const b = sig[offset + 2 * band + 1] as number;
	// a small-integer key (< 2^30): V8 hashes those without allocating
	return fmix32(Math.imul(a, 0x01000193) ^ b ^ Math.imul(band + 1, 0x27d4eb2d)) & 0x3fffffff;
}

/** Hash of the word n-gram words[i..i+n) (n = 1..3), the same for inputs and for the trigger search. */
export function ngramHash(words: Uint32Array, i: number, n: number): number {
	let h = Math.imul(n, 0x9e3779b1);
	for (let k = 0; k < n; k++) h = fmix32(h ^ (words[i + k] as number));
	return h;
}
