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
const SUSPECT =
	/[\p{Cf}\uFE00-\uFE0F\u{E0100}-\u{E01EF}\u115F\u1160\u3164\uFFA0\u2800\u180B-\u180D\u034F]|[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]/u;
const INVISIBLE = /[\p{Cf}\uFE00-\uFE0F\u{E0100}-\u{E01EF}\u115F\u1160\u3164\uFFA0\u2800\u180B-\u180D\u034F]/u;
const JOINING_SCRIPT =
	/[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Devanagari}\p{Script=Bengali}\p{Script=Gurmukhi}\p{Script=Gujarati}\p{Script=Oriya}\p{Script=Tamil}\p{Script=Telugu}\p{Script=Kannada}\p{Script=Malayalam}\p{Script=Sinhala}\p{Script=Tibetan}\p{Script=Myanmar}\p{Script=Khmer}\p{Script=Thai}\p{Script=Lao}\p{Script=Hebrew}]/u;
const RTL = /[\p{Script=Arabic}\p{Script=Hebrew}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
const PICTOGRAPHIC = /[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Emoji_Component}]/u;
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
function ordinary(cp: number, prev: string | undefined, next: string | undefined, text: string, at: number): boolean {
	const p = prev ?? "";
	const n = next ?? "";
	switch (true) {
		case cp === 0x200c || cp === 0x200d: // ZWNJ, ZWJ
			return (JOINING_SCRIPT.test(p) && (JOINING_SCRIPT.test(n) || n === "")) || (PICTOGRAPHIC.test(p) || p === "\uFE0F") && PICTOGRAPHIC.test(n);
		case cp === 0xfe0e || cp === 0xfe0f:
			return EMOJI.test(p);
		case cp >= 0xe0100 && cp <= 0xe01ef:
			return HAN.test(p);
		case cp === 0x00ad: // soft hyphen: a hyphenation hint inside a word
			return LETTER.test(p) && LETTER.test(n);
		case cp === 0xfeff:
			return at === 0;
		case cp === 0x200e || cp === 0x200f || cp === 0x061c || (cp >= 0x202a && cp <= 0x202c) || (cp >= 0x2066 && cp <= 0x2069):
			return RTL.test(text);
		case cp >= 0xe0020 && cp <= 0xe007f: // tag sequences of subdivision flags: 🏴 + tags + cancel tag
			return /\u{1F3F4}[\u{E0020}-\u{E007E}]*$/u.test(text.slice(Math.max(0, at - 40), at));
		default:
			return false;
	}
}

/** The deceptive characters and words of one text (empty for almost every text: one regex test decides). */
export function scanText(text: string): CharHit[] {
	if (!SUSPECT.test(text)) return [];
	const hits: CharHit[] = [];
	const cps = [...text];
	let offset = 0;
	for (let i = 0; i < cps.length; i++) {
		const ch = cps[i] as string;
		if (INVISIBLE.test(ch)) {
			const cp = ch.codePointAt(0) as number;
			if (!ordinary(cp, cps[i - 1], cps[i + 1], text, offset)) {
				const kind = cp === 0x202d || cp === 0x202e ? "bidi-override" : cp >= 0xe0000 && cp <= 0xe007f ? "tag" : "invisible";
				hits.push({ what: hex(cp), kind, at: i });
			}
		}
		offset += ch.length;
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
		const disguised = latin === 0 && foreign >= 3 && lookalike === foreign && latinWords >= 3 && !hasForeignNeighbours(text, w);
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
