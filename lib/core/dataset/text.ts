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
/** Anything else that is not a space and not ASCII punctuation: format characters, selectors, symbols, emoji. */
const OTHER = String.raw`[^\s\p{L}\p{N}\p{M}\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]+|[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]+`;
const ANY_TOKEN = new RegExp(`${WORD_CLASS}+|${OTHER}`, "gv");

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
 * Tokens of a text, in order: words lowercased, and non-word runs (invisible characters, symbols) as they are. ASCII
 * punctuation is dropped: it carries no trigger a word n-gram would miss.
 */
export function tokenize(text: string): string[] {
	const out: string[] = [];
	for (const m of text.matchAll(ANY_TOKEN)) {
		const t = m[0];
		out.push(isWordStart(t) ? t.toLowerCase() : t);
	}
	return out;
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
	for (const m of text.matchAll(WORD)) out.push(m[0].toLowerCase());
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
	for (const raw of text.split(/(?<=[.!?。！？])\s+|\n+/u)) {
		const s = normalize(raw);
		if (s.length > 0 && s.split(" ").length >= minWords) out.push(s);
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
	"a an and are as at be by for from has have if in into is it its of on or that the this to was were will with which when where what who how not no yes return returns".split(" "),
);

/** Stemmed words of a text, identifiers split too (get_message → get, messag), without short function words. */
export function contentWords(text: string): Set<string> {
	const out = new Set<string>();
	for (const w of stemmedWords(text)) {
		for (const part of [w, ...w.split(/_+/)]) {
			if (part.length > 2 && !FUNCTION_WORDS.has(part)) out.add(stem(part));
		}
	}
	return out;
}

