/**
 * Invisible and deceptive characters in a record's text: format characters (zero-width, bidi controls, tags),
 * variation selectors and other blank code points, and words that mix Latin with look-alike Cyrillic, Greek or
 * Armenian letters. What a language uses them for is not flagged: ZWNJ/ZWJ between letters of scripts that join
 * (Arabic, Indic…), ZWJ and VS16 in emoji sequences, marks beside right-to-left text, ideographic variation
 * selectors after Han, a soft hyphen inside a word, a byte-order mark at the start.
 */

export interface CharHit {
	/** code point as U+XXXX, or the deceptive word */
	readonly what: string;
	readonly kind: "invisible" | "bidi-override" | "tag" | "homoglyph";
	/** code-point offset in the turn's text */
	readonly at: number;
	/** the homoglyph word spelt with the Latin letters it imitates */
	readonly looksLike?: string;
}

/** Candidates, cheap to test for before the per-character walk. */
// (variation selectors by their property: a class listing them beside base characters reads as a combined character)
const SUSPECT =
	/[\p{Cf}\p{Variation_Selector}\u115F\u1160\u3164\uFFA0\u2800]|\u034F|[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]/u;
const INVISIBLE = /[\p{Cf}\p{Variation_Selector}\u115F\u1160\u3164\uFFA0\u2800]|\u034F/u;
const JOINING_SCRIPT =
	/[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Devanagari}\p{Script=Bengali}\p{Script=Gurmukhi}\p{Script=Gujarati}\p{Script=Oriya}\p{Script=Tamil}\p{Script=Telugu}\p{Script=Kannada}\p{Script=Malayalam}\p{Script=Sinhala}\p{Script=Tibetan}\p{Script=Myanmar}\p{Script=Khmer}\p{Script=Thai}\p{Script=Lao}\p{Script=Hebrew}]/u;
const RTL = /[\p{Script=Arabic}\p{Script=Hebrew}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
/** what an emoji ZWJ sequence joins: pictographs (not digits, "#" or "*", which are emoji components too) */
const PICTOGRAPH = /\p{Extended_Pictographic}/u;
const SKIN_TONE = /\p{Emoji_Modifier}/u;
const EMOJI = /\p{Emoji}/u;
const HAN = /\p{Script=Han}/u;
const LETTER = /\p{L}/u;
const LATIN = /\p{Script=Latin}/u;
const LOOKALIKE_SCRIPT = /[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]/u;
const WORD = /[\p{L}\p{M}]+/gu;

/**
 * Letters of other scripts that render like a Latin letter in common fonts (a subset of Unicode's confusables that
 * covers the homoglyphs used in practice; a letter outside it, such as Greek μ in "μs", is no disguise).
 */
// biome-ignore format: a table
const CONFUSABLE: Record<string, string> = {
	а: "a", в: "b", е: "e", о: "o", р: "p", с: "c", у: "y", х: "x", ѕ: "s", і: "i", ј: "j", ӏ: "l", һ: "h", ԁ: "d",
	ԛ: "q", ԝ: "w", ү: "y", ѵ: "v", ɡ: "g", А: "A", В: "B", Е: "E", К: "K", М: "M", Н: "H", О: "O", Р: "P", С: "C",
	Т: "T", Х: "X", Ѕ: "S", І: "I", Ј: "J", Ү: "Y", ο: "o", ν: "v", ι: "i", ρ: "p", υ: "u", χ: "x", Α: "A", Β: "B",
	Ε: "E", Ζ: "Z", Η: "H", Ι: "I", Κ: "K", Μ: "M", Ν: "N", Ο: "O", Ρ: "P", Τ: "T", Υ: "Y", Χ: "X", օ: "o", ս: "u",
	ց: "g", հ: "h", ո: "n",
};

function hex(cp: number): string {
	return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Is this invisible character doing a language's or an emoji's ordinary work here? */
function ordinary(cp: number, cps: readonly string[], i: number, text: string): boolean {
	const p = cps[i - 1] ?? "";
	const n = cps[i + 1] ?? "";
	switch (true) {
		case cp === 0x200c: // ZWNJ: between letters of a script that joins
			return JOINING_SCRIPT.test(p) && (JOINING_SCRIPT.test(n) || n === "");
		case cp === 0x200d: // ZWJ: the same, or inside an emoji ZWJ sequence (👩‍💻, 👍🏽‍…, 🏳️‍🌈)
			return (
				(JOINING_SCRIPT.test(p) && (JOINING_SCRIPT.test(n) || n === "")) || (emojiBefore(cps, i) && PICTOGRAPH.test(n))
			);
		case cp === 0xfe0e || cp === 0xfe0f:
			return EMOJI.test(p);
		case cp >= 0xe0100 && cp <= 0xe01ef:
			return HAN.test(p);
		case cp === 0x00ad: // soft hyphen: a hyphenation hint inside a word
			return LETTER.test(p) && LETTER.test(n);
		case cp === 0xfeff:
			return i === 0;
		case cp === 0x200e ||
			cp === 0x200f ||
			cp === 0x061c ||
			(cp >= 0x202a && cp <= 0x202c) ||
			(cp >= 0x2066 && cp <= 0x2069):
			return RTL.test(text);
		case cp >= 0xe0020 && cp <= 0xe007f:
			return flagTagSequence(cps, i);
		default:
			return false;
	}
}

/** The emoji a ZWJ at i follows: a pictograph, with its skin tone or presentation selector. */
function emojiBefore(cps: readonly string[], i: number): boolean {
	let j = i - 1;
	if (cps[j] === "\uFE0F" || SKIN_TONE.test(cps[j] ?? "")) j--;
	return PICTOGRAPH.test(cps[j] ?? "");
}

const BLACK_FLAG = "\u{1F3F4}";
const CANCEL_TAG = "\u{E007F}";
/** Longest subdivision code a flag's tags spell (CLDR: a region and up to four more characters, "gbeng"). */
const MAX_FLAG_TAGS = 7;

function tagSpec(c: string | undefined): boolean {
	const n = c?.codePointAt(0) ?? 0;
	return n >= 0xe0020 && n <= 0xe007e;
}

/**
 * Is the tag character at i part of a subdivision flag, 🏴 + 2–7 tag letters or digits + cancel tag (🏴󠁧󠁢󠁥󠁮󠁧󠁿)? Any other
 * run of tags (text smuggled as invisible tag characters, even after a 🏴) is not.
 */
function flagTagSequence(cps: readonly string[], i: number): boolean {
	let s = i;
	while (s > 0 && i - s <= MAX_FLAG_TAGS && tagSpec(cps[s - 1])) s--;
	let e = cps[i] === CANCEL_TAG ? i : i + 1;
	while (e < cps.length && e - s <= MAX_FLAG_TAGS && tagSpec(cps[e])) e++;
	if (cps[s - 1] !== BLACK_FLAG || cps[e] !== CANCEL_TAG || e - s < 2 || e - s > MAX_FLAG_TAGS) return false;
	for (let j = s; j < e; j++) {
		const n = (cps[j] as string).codePointAt(0) as number;
		if (!((n >= 0xe0030 && n <= 0xe0039) || (n >= 0xe0061 && n <= 0xe007a))) return false;
	}
	return true;
}

/** The deceptive characters and words of one text (empty for almost every text: one regex test decides). */
export function scanText(text: string): CharHit[] {
	if (!SUSPECT.test(text)) return [];
	const hits: CharHit[] = [];
	const cps = [...text];
	for (let i = 0; i < cps.length; i++) {
		const ch = cps[i] as string;
		if (INVISIBLE.test(ch)) {
			const cp = ch.codePointAt(0) as number;
			if (!ordinary(cp, cps, i, text)) {
				const kind =
					cp === 0x202d || cp === 0x202e ? "bidi-override" : cp >= 0xe0000 && cp <= 0xe007f ? "tag" : "invisible";
				hits.push({ what: hex(cp), kind, at: i });
			}
		}
	}
	if (LOOKALIKE_SCRIPT.test(text)) hits.push(...homoglyphWords(text));
	return hits;
}

/**
 * Words that mix Latin letters with look-alike letters of another script, and words wholly of look-alikes written
 * among Latin words (an all-Cyrillic "раураl" in an English sentence). Real Cyrillic or Greek text is left alone.
 */
function homoglyphWords(text: string): CharHit[] {
	const hits: CharHit[] = [];
	const latinWords = (text.match(/\p{Script=Latin}{2,}/gu) ?? []).length;
	for (const m of text.matchAll(WORD)) {
		const w = m[0];
		if (!LOOKALIKE_SCRIPT.test(w)) continue;
		let latin = 0;
		let foreign = 0;
		let lookalike = 0;
		for (const ch of w) {
			if (LATIN.test(ch)) latin++;
			else if (LOOKALIKE_SCRIPT.test(ch)) {
				foreign++;
				if (CONFUSABLE[ch] !== undefined) lookalike++;
			}
		}
		const mixed = latin > 0 && lookalike > 0;
		// wholly look-alike, at least 3 letters, in a text that is otherwise Latin
		const disguised =
			latin === 0 && foreign >= 3 && lookalike === foreign && latinWords >= 3 && !hasForeignNeighbours(text, w);
		if (mixed || disguised) {
			const at = [...text.slice(0, m.index)].length;
			hits.push({ what: w, kind: "homoglyph", at, looksLike: [...w].map((c) => CONFUSABLE[c] ?? c).join("") });
		}
	}
	return hits;
}

/** Other words of the look-alike scripts that are not themselves disguises: the text is partly in that language. */
function hasForeignNeighbours(text: string, word: string): boolean {
	for (const m of text.matchAll(WORD)) {
		const w = m[0];
		if (w === word || !LOOKALIKE_SCRIPT.test(w)) continue;
		if ([...w].some((c) => LOOKALIKE_SCRIPT.test(c) && CONFUSABLE[c] === undefined)) return true;
	}
	return false;
}
