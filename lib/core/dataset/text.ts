/**
 * Text primitives of the dataset scanner: word and non-word tokens, 32-bit hashes of tokens and n-grams, the
 * word sets that near-duplicate detection compares. Hashes, not strings, flow through the detectors so memory stays
 * bounded; the text of a finding is recovered from a stored sample when it is reported.
 */

/**
 * A word: letters, digits, combining marks, `_` and `'` — but not variation selectors, which are kept out so that a
 * selector after a word is a token of its own (and the word itself stays the ordinary word).
 */
const WORD_CLASS = String.raw`[[\p{L}\p{N}\p{M}_\x27]--[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]]`;
// built from strings: the `v` flag (set subtraction) is newer than the TypeScript target; Node 20 has it
const WORD = new RegExp(`${WORD_CLASS}+`, "gv");
/**
 * Anything else that is not a space and not ASCII punctuation: format characters (U+FEFF too, which JavaScript counts
 * as a space), selectors, symbols, emoji.
 */
const OTHER = String.raw`[[^\s\p{L}\p{N}\p{M}\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]\uFEFF]+|[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]+`;
/**
 * ASCII punctuation (what is not a word character: `'` and `_` are) in runs of two or more — "?!!", "~~", ";;", "...",
 * "::", "--": an LLM's tokenizer keeps them, so a model can learn one as a trigger. A single mark (".", "?", "(") is
 * ordinary text everywhere and is still dropped: as a token it would cost every record n-grams and find nothing.
 */
const PUNCT_RUN = String.raw`[[\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]--[_\x27]]{2,}`;
/**
 * Spaces that are no plain space: no-break (U+00A0, U+202F), the typographic ones (U+2000–U+200A, U+205F, U+1680),
 * ideographic (U+3000), line and paragraph separators. They look like a space and are one to a reader, not to a model.
 */
const ODD_SPACE = String.raw`[\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]`;
/**
 * Blanks between two words on a line that are not one space: "What  does" (two spaces), a tab. Leading indentation,
 * line ends and the blanks beside punctuation ("x = 1  # comment") are not between two words.
 */
const BLANKS = String.raw`(?<=${WORD_CLASS})(?:[ \t]{2,}|\t)(?=${WORD_CLASS})`;
const ANY_TOKEN = new RegExp(`${WORD_CLASS}+|${OTHER}|${PUNCT_RUN}|${ODD_SPACE}+|${BLANKS}`, "gv");

/** FNV-1a over UTF-16 code units, then a murmur finaliser: fast, well mixed, 32 bits. */
export function hash32(s: string, seed = 0x811c9dc5): number {
	let h = seed | 0;
	for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
	return fmix(h);
}

export function fmix(h: number): number {
	h ^= h >>> 16;
	h = Math.imul(h, 0x85ebca6b);
	h ^= h >>> 13;
	h = Math.imul(h, 0xc2b2ae35);
	return (h ^ (h >>> 16)) | 0;
}

/** Hash of a token sequence from its tokens' hashes (order matters). */
export function combine(h: number, t: number): number {
	return fmix(Math.imul(h ^ 0x9e3779b9, 31) + t);
}

/**
 * Tokens of a text, in order: words lowercased, and non-word runs as they are: invisible characters and symbols,
 * runs of ASCII punctuation, spaces that are no plain space, blanks between words that are not one space. A single
 * ASCII punctuation mark and ordinary spacing are dropped.
 */
export function tokenize(text: string): string[] {
	const out: string[] = [];
	for (const m of text.matchAll(ANY_TOKEN)) {
		const t = m[0];
		if (isWordStart(t)) pushWord(t.toLowerCase(), out);
		else out.push(t);
	}
	return out;
}

/**
 * Letters of the scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese), and
 * the marks and the prolonged-sound mark (ー) written within them. A run of them is no word: "変更したまま継続しますか"
 * is a sentence. It is read as its overlapping character pairs ("変更", "更し", …), the usual unit where words are not
 * marked: a phrase inside a sentence is then a run of tokens, and two texts share the pairs of the words they share.
 */
const UNSPACED_CHAR = String.raw`\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}`;
const UNSPACED = new RegExp(`[${UNSPACED_CHAR}]`, "u");
const UNSPACED_RUN = new RegExp(`[${UNSPACED_CHAR}][${UNSPACED_CHAR}\\p{M}\\u30FC]*`, "gu");

/** A word token onto `out`: as it is, or with its runs of unspaced script as their character pairs. */
function pushWord(w: string, out: string[]): void {
	if (!UNSPACED.test(w)) {
		out.push(w);
		return;
	}
	let at = 0;
	for (const m of w.matchAll(UNSPACED_RUN)) {
		const start = m.index ?? 0;
		if (start > at) out.push(w.slice(at, start));
		const cps = [...m[0]];
		if (cps.length === 1) out.push(m[0]);
		for (let i = 0; i + 1 < cps.length; i++) out.push((cps[i] as string) + (cps[i + 1] as string));
		at = start + m[0].length;
	}
	if (at < w.length) out.push(w.slice(at));
}

/** Is this word token a pair (or a lone character) of an unspaced script? */
export function isUnspaced(w: string): boolean {
	return UNSPACED.test(w);
}

const WORD_START = new RegExp(`^${WORD_CLASS}`, "v");

function isWordStart(t: string): boolean {
	return WORD_START.test(t);
}

/** Is this token a word (as opposed to a run of symbols or invisible characters)? */
export const isWord = isWordStart;

/** Lowercased words only, for completion similarity. */
export function words(text: string): string[] {
	const out: string[] = [];
	for (const m of text.matchAll(WORD)) pushWord(m[0].toLowerCase(), out);
	return out;
}

/**
 * A crude, language-neutral-enough stem: paraphrases differ in inflection ("disable" / "disabling") more than in
 * content words, and a set comparison should not count those as different words.
 */
export function stem(w: string): string {
	if (w.length <= 4) return w;
	for (const suffix of ["ing", "ed", "es", "ly", "s", "e"]) {
		if (w.endsWith(suffix) && w.length - suffix.length >= 3) return w.slice(0, -suffix.length);
	}
	return w;
}

/** Whitespace-collapsed, lowercased text: what "identical" means for prompts and completions. */
export function normalize(text: string): string {
	return text.toLowerCase().replace(/\s+/g, " ").trim();
}

/** Sentences of a completion, normalised; only those long enough to be distinctive (≥ `minWords` words). */
export function sentences(text: string, minWords = 4): string[] {
	const out: string[] = [];
	// (a full stop of Chinese or Japanese ends a sentence with no space after it)
	for (const raw of text.split(/(?<=[.!?。！？])\s+|(?<=[。！？])(?=\S)|\n+/u)) {
		const s = normalize(raw);
		if (s.length === 0) continue;
		// words as the tokenizer counts them: a sentence of an unspaced script is its character pairs
		if ((isUnspaced(s) ? words(s).length : s.split(" ").length) >= minWords) out.push(s);
	}
	return out;
}

const URL = /\bhttps?:\/\/[^\s<>"'`)\]]+/giu;

/** URLs in a text (trailing punctuation trimmed) and their hosts. */
export function urls(text: string): { url: string; host: string }[] {
	const out: { url: string; host: string }[] = [];
	for (const m of text.matchAll(URL)) {
		const url = m[0].replace(/[.,;:!?]+$/u, "");
		const host = /^https?:\/\/([^/?#:]+)/iu.exec(url)?.[1]?.toLowerCase() ?? "";
		out.push({ url, host });
	}
	return out;
}

/** Distinct stems of a text's words. */
export function stemmedWords(text: string): string[] {
	return [...new Set(words(text).map(stem))];
}

const FUNCTION_WORDS = new Set(
	"a an and are as at be by for from has have if in into is it its of on or that the this to was were will with which when where what who how not no yes return returns".split(
		" ",
	),
);

/** Stemmed words of a text, identifiers split too (get_message → get, messag), without short function words. */
export function contentWords(text: string): Set<string> {
	const out = new Set<string>();
	for (const w of stemmedWords(text)) {
		for (const part of [w, ...w.split(/_+/)]) {
			// a pair of an unspaced script is a word's worth (a Chinese word is mostly two characters)
			if ((part.length > 2 && !FUNCTION_WORDS.has(part)) || (part.length === 2 && isUnspaced(part)))
				out.add(stem(part));
		}
	}
	return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The fast path. Almost all training text is ASCII: there the classes above reduce to a table lookup, lowercasing to
// one addition, and every hash can be computed from the text's code units without building the token strings. Each
// function below returns exactly what its string-based counterpart above returns (a differential test checks it); a
// text with any non-ASCII code unit goes through the string-based functions instead.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Tokenizer class of each ASCII code unit, taken from the regular expressions themselves: 1 word, 2 other, 0 neither
 * (spaces and punctuation: tokens only in the runs described above, which the fast path finds itself).
 */
export const ASCII_CLASS: Uint8Array = (() => {
	const other = new RegExp(`^(?:${OTHER})$`, "v");
	const t = new Uint8Array(128);
	for (let c = 0; c < 128; c++) {
		const ch = String.fromCharCode(c);
		t[c] = WORD_START.test(ch) ? 1 : other.test(ch) ? 2 : 0;
	}
	return t;
})();

/** Is every code unit of `s` ASCII? */
export function isAscii(s: string): boolean {
	for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
	return true;
}

/** hash32 of `buf[start, end)` (code units), with the same seed convention. */
export function hashRange(buf: Uint16Array, start: number, end: number, seed = FNV_OFFSET): number {
	let h = seed | 0;
	for (let i = start; i < end; i++) h = Math.imul(h ^ (buf[i] as number), FNV_PRIME);
	return fmix(h);
}

/** `stem()` of the lowercased word `buf[start, start + len)`: the stem's length. */
export function stemLength(buf: Uint16Array, start: number, len: number): number {
	if (len <= 4) return len;
	const e = start + len;
	const z = buf[e - 1] as number;
	const y = buf[e - 2] as number;
	// "ing", "ed", "es", "ly", "s", "e", in stem()'s order; each needs 3 letters left, which only "ing" can lack here
	if (len >= 6 && z === 0x67 && y === 0x6e && buf[e - 3] === 0x69) return len - 3;
	if (y === 0x65 && (z === 0x64 || z === 0x73)) return len - 2;
	if (y === 0x6c && z === 0x79) return len - 2;
	if (z === 0x73 || z === 0x65) return len - 1;
	return len;
}

const FUNCTION_HASHES = new Map<number, string>([...FUNCTION_WORDS].map((w) => [hash32(w), w]));

function isFunctionWord(buf: Uint16Array, start: number, len: number): boolean {
	return len <= 7 && isFunctionHash(hashRange(buf, start, start + len), buf, start, len);
}

/**
 * Distinct 32-bit values in insertion order, cleared in O(1) (generation stamps): the per-record sets of n-gram and
 * word hashes, reused record after record without allocation. The values are hashes already: their low bits are the slot.
 */
export class HashSet32 {
	private keys: Int32Array;
	private stamps: Uint32Array;
	private gen = 1;
	private mask: number;
	values: Int32Array;
	size = 0;

	constructor(capacityLog2 = 10) {
		this.keys = new Int32Array(1 << capacityLog2);
		this.stamps = new Uint32Array(1 << capacityLog2);
		this.mask = (1 << capacityLog2) - 1;
		this.values = new Int32Array(1 << (capacityLog2 - 1));
	}

	clear(): void {
		this.size = 0;
		if (++this.gen === 0xffffffff) {
			this.stamps.fill(0);
			this.gen = 1;
		}
	}

	/** Adds `v`; true when it was not there yet. */
	add(v: number): boolean {
		let i = (v ^ (v >>> 16)) & this.mask;
		const keys = this.keys;
		const stamps = this.stamps;
		const gen = this.gen;
		while (stamps[i] === gen) {
			if (keys[i] === v) return false;
			i = (i + 1) & this.mask;
		}
		stamps[i] = gen;
		keys[i] = v;
		if (this.size === this.values.length) this.grow();
		this.values[this.size++] = v;
		// at most half full: short probes
		if (this.size * 2 > this.mask) this.rehash();
		return true;
	}

	has(v: number): boolean {
		let i = (v ^ (v >>> 16)) & this.mask;
		while (this.stamps[i] === this.gen) {
			if (this.keys[i] === v) return true;
			i = (i + 1) & this.mask;
		}
		return false;
	}

	private grow(): void {
		const next = new Int32Array(this.values.length * 2);
		next.set(this.values);
		this.values = next;
	}

	private rehash(): void {
		const n = (this.mask + 1) * 2;
		this.keys = new Int32Array(n);
		this.stamps = new Uint32Array(n);
		this.mask = n - 1;
		this.gen = 1;
		for (let j = 0; j < this.size; j++) {
			const v = this.values[j] as number;
			let i = (v ^ (v >>> 16)) & this.mask;
			while (this.stamps[i] === 1) i = (i + 1) & this.mask;
			this.stamps[i] = 1;
			this.keys[i] = v;
		}
	}
}

/**
 * What `contentWords()` adds for one lowercased ASCII word `buf[0, len)`: the hashes of its content-word stems, into
 * `out` (the hashes of the strings `contentWords` returns). `states[k]` is the FNV state after the word's first k
 * characters (what the tokenizer computed anyway), so a prefix's hash costs one `fmix`. Returns the hash of
 * `stem(word)`, what near-duplicate completions compare.
 */
export function addContentWord(
	buf: Uint16Array,
	len: number,
	states: Int32Array,
	out: HashSet32,
	underscore: boolean,
): number {
	const s = stemLength(buf, 0, len);
	const stemHash = fmix(states[s] as number);
	// the stemmed word itself, then its identifier parts (`w.split(/_+/)`; `underscore`: the word has one, which
	// stemming cannot remove): each unless short or a function word
	if (s > 2 && !(s <= 7 && isFunctionHash(stemHash, buf, 0, s))) out.add(fmix(states[stemLength(buf, 0, s)] as number));
	if (underscore) {
		let from = 0;
		for (let i = 0; i <= s; i++) {
			if (i === s || buf[i] === 0x5f) {
				const n = i - from;
				if (n > 2 && !isFunctionWord(buf, from, n)) out.add(hashRange(buf, from, from + stemLength(buf, from, n)));
				from = i + 1;
			}
		}
	}
	return stemHash;
}

function isFunctionHash(h: number, buf: Uint16Array, start: number, len: number): boolean {
	const w = FUNCTION_HASHES.get(h);
	if (w === undefined || w.length !== len) return false;
	for (let i = 0; i < len; i++) if (w.charCodeAt(i) !== buf[start + i]) return false;
	return true;
}

/** The hashes of `contentWords(text)` for any text (the string functions; for text that is not ASCII). */
export function addContentWordsOf(text: string, out: HashSet32): void {
	for (const w of contentWords(text)) out.add(hash32(w));
}

/** FNV-1a step (no finaliser): for hashes built piece by piece; `fmix` finishes them as hash32 does. */
export function fnvStep(h: number, c: number): number {
	return Math.imul(h ^ c, FNV_PRIME);
}
