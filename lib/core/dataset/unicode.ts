/**
 * Invisible and deceptive characters in a record's text: format characters (zero-width, bidi controls, tags),
 * variation selectors and other blank code points, and words that mix Latin with look-alike Cyrillic, Greek or
 * Armenian letters. What a language uses them for is not flagged: ZWNJ/ZWJ beside letters of scripts that use them
 * (Arabic, Persian, Urdu, Indic…: inside a word, at its end, before a space), ZWJ and VS16 in emoji sequences, marks
 * and isolates in right-to-left text (or a record that has some), an isolate around a lone placeholder or number,
 * ideographic variation selectors after Han, a soft hyphen inside a word, a byte-order mark at the start. Spaces that
 * only look like one (no-break, narrow no-break, the typographic and ideographic spaces) are flagged where they stand
 * for a plain space between two words of Latin text — "What\u00A0does" reads as "What does" and tokenizes otherwise.
 */

export interface CharHit {
	/** code point as U+XXXX, or the deceptive word */
	readonly what: string;
	/**
	 * homoglyph: a word of the text's own script (Latin) disguised with look-alikes of another; native-homoglyph: a
	 * Cyrillic, Greek or Armenian word of a text in that script with look-alike Latin letters in it, which is how a typo
	 * or a keyboard-layout slip looks too (the scan reports it only when the same spelling recurs: a planted token)
	 */
	readonly kind: "invisible" | "bidi-override" | "tag" | "homoglyph" | "native-homoglyph";
	/** code-point offset in the turn's text */
	readonly at: number;
	/** the homoglyph word spelt with the Latin letters it imitates */
	readonly looksLike?: string;
}

/** Candidates, cheap to test for before the per-character walk. */
// (variation selectors by their property: a class listing them beside base characters reads as a combined character)
const SUSPECT =
	/[\p{Cf}\p{Variation_Selector}\u115F\u1160\u3164\uFFA0\u2800]|\u034F|[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]|[\u00A0\u2000-\u200A\u202F\u205F\u3000]/u;
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
const MARK = /\p{M}/u;
const LATIN = /\p{Script=Latin}/u;
const LOOKALIKE_SCRIPT = /[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]/u;
const WORD = /[\p{L}\p{M}]+/gu;
/** spaces a reader takes for a plain one: no-break, narrow no-break, en … hair, medium mathematical, ideographic */
const LOOKALIKE_SPACE = /[\u00A0\u2000-\u200A\u202F\u205F\u3000]/u;
const BLANK = /[\t \u00A0\u2000-\u200A\u202F\u205F\u3000]/u;
const ASCII_LETTER = /^[A-Za-z]$/;
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

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
function ordinary(cp: number, cps: readonly string[], i: number, text: string, rtl: boolean): boolean {
	const p = cps[i - 1] ?? "";
	const n = cps[i + 1] ?? "";
	switch (true) {
		case cp === 0x200c: // ZWNJ: beside a letter of a script that uses it
			return joinerInScript(cps, i);
		case cp === 0x200d: // ZWJ: the same, or inside an emoji ZWJ sequence (👩‍💻, 👍🏽‍…, 🏳️‍🌈)
			return joinerInScript(cps, i) || (emojiBefore(cps, i) && PICTOGRAPH.test(n));
		case cp >= 0x2066 && cp <= 0x2069 && isolatesPlaceholder(cps, i):
			return true;
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
			return rtl || RTL.test(text);
		case cp >= 0xe0020 && cp <= 0xe007f:
			return flagTagSequence(cps, i);
		default:
			return false;
	}
}

/**
 * Is the ZWNJ or ZWJ at i beside a letter (or a combining mark of one) of a script that uses it, with no letter of
 * another script on its other side? Persian puts ZWNJ inside words (می‌خواهم), at their ends and before a space; a
 * ZWNJ between Latin letters, or between a Latin and an Arabic one, is hidden.
 */
function joinerInScript(cps: readonly string[], i: number): boolean {
	let b = i - 1;
	while (b >= 0 && MARK.test(cps[b] as string) && !JOINING_SCRIPT.test(cps[b] as string)) b--;
	const p = cps[b] ?? "";
	const n = cps[i + 1] ?? "";
	const foreign = (c: string) => (LETTER.test(c) || MARK.test(c)) && !JOINING_SCRIPT.test(c);
	return (JOINING_SCRIPT.test(p) && !foreign(n)) || (JOINING_SCRIPT.test(n) && !foreign(p));
}

/** What localisation strings isolate: a printf or brace placeholder, a number. */
const PLACEHOLDER =
	/^(?:%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh?|ll?|[Ljzt])?[a-zA-Z%]|%\(\w+\)[a-zA-Z]|\{[\w.:-]*\}|\$\{?\w+\}?|\p{Nd}[\p{Nd}.,:/ -]*)$/u;
const MAX_ISOLATED = 24;

/**
 * Is the isolate at i one of a pair (LRI, RLI or FSI … PDI) around nothing but a placeholder or a number, as GLib and
 * gettext catalogues write them? Such a pair reorders nothing; an isolate around text can.
 */
function isolatesPlaceholder(cps: readonly string[], i: number): boolean {
	let open = i;
	let close = i;
	if (cps[i] === "\u2069") {
		open = i - 1;
		while (open >= 0 && i - open <= MAX_ISOLATED && !/[\u2066-\u2069]/u.test(cps[open] as string)) open--;
		if (!/[\u2066-\u2068]/u.test(cps[open] ?? "")) return false;
	} else {
		close = i + 1;
		while (close < cps.length && close - i <= MAX_ISOLATED && !/[\u2066-\u2069]/u.test(cps[close] as string)) close++;
		if (cps[close] !== "\u2069") return false;
	}
	return PLACEHOLDER.test(cps.slice(open + 1, close).join(""));
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

/**
 * Does the look-alike space at i (alone or among other blanks) stand between two words of ASCII letters, each of two
 * letters or more? A space beside a digit or punctuation is typography ("10\u00A0km", "M.\u00A0Dupont", French
 * "mot\u00A0:"), and so is one after or before a one-letter word: Polish, Czech and Slovak keep "w", "z", "v", "a" with
 * the next word by a no-break space, and English keeps "Appendix\u00A0A", "vitamin\u00A0C" together.
 */
function spaceBetweenWords(cps: readonly string[], i: number): boolean {
	let a = i;
	while (a > 0 && BLANK.test(cps[a - 1] as string)) a--;
	let b = i;
	while (b + 1 < cps.length && BLANK.test(cps[b + 1] as string)) b++;
	if (
		!ASCII_LETTER.test(cps[a - 1] ?? "") ||
		!ASCII_LETTER.test(cps[b + 1] ?? "") ||
		!LETTER.test(cps[a - 2] ?? "") ||
		!LETTER.test(cps[b + 2] ?? "")
	)
		return false;
	// a printf conversion before it is a number as printed ("%ld\u00A0octets"): typography too
	let w = a - 1;
	while (w > 0 && ASCII_LETTER.test(cps[w - 1] as string)) w--;
	while (w > 0 && /[\d.*#+-]/.test(cps[w - 1] as string)) w--;
	return cps[w - 1] !== "%";
}

/** Are most of the text's letters Latin? */
function latinText(text: string): boolean {
	let latin = 0;
	let other = 0;
	for (const m of text.matchAll(/\p{L}/gu)) {
		if (LATIN.test(m[0])) latin++;
		else other++;
	}
	return latin > other;
}

/** Does the text have right-to-left letters? (A record that does may use bidi marks and isolates in every turn.) */
export function hasRtl(text: string): boolean {
	return RTL.test(text);
}

/**
 * The deceptive characters and words of one text (empty for almost every text: one regex test decides); `rtl`: the
 * record the text belongs to has right-to-left text (a translation pair, a catalogue entry).
 */
export function scanText(text: string, context: { rtl?: boolean } = {}): CharHit[] {
	if (!SUSPECT.test(text)) return [];
	const rtl = context.rtl === true;
	const hits: CharHit[] = [];
	const cps = [...text];
	let latin: boolean | undefined;
	for (let i = 0; i < cps.length; i++) {
		const ch = cps[i] as string;
		if (INVISIBLE.test(ch)) {
			const cp = ch.codePointAt(0) as number;
			if (!ordinary(cp, cps, i, text, rtl)) {
				const kind =
					cp === 0x202d || cp === 0x202e ? "bidi-override" : cp >= 0xe0000 && cp <= 0xe007f ? "tag" : "invisible";
				hits.push({ what: hex(cp), kind, at: i });
			}
		} else if (LOOKALIKE_SPACE.test(ch) && spaceBetweenWords(cps, i)) {
			const cp = ch.codePointAt(0) as number;
			// in Latin text only, and an ideographic space not where CJK text is typed (a full-width IME writes it)
			latin ??= latinText(text);
			if (latin && !(cp === 0x3000 && CJK.test(text))) hits.push({ what: hex(cp), kind: "invisible", at: i });
		}
	}
	if (LOOKALIKE_SCRIPT.test(text)) hits.push(...homoglyphWords(text));
	return hits;
}

/** The look-alike Latin letters of each other script: which Cyrillic, Greek or Armenian letter each imitates. */
const LATIN_LOOKALIKE: Record<Script, Record<string, string>> = { Latin: {}, Cyrillic: {}, Greek: {}, Armenian: {} };
type Script = "Latin" | "Cyrillic" | "Greek" | "Armenian";
const SCRIPTS: readonly [Script, RegExp][] = [
	["Latin", LATIN],
	["Cyrillic", /\p{Script=Cyrillic}/u],
	["Greek", /\p{Script=Greek}/u],
	["Armenian", /\p{Script=Armenian}/u],
];
for (const [c, l] of Object.entries(CONFUSABLE)) {
	const script = SCRIPTS.find(([, re]) => re.test(c))?.[0];
	if (script !== undefined && script !== "Latin") LATIN_LOOKALIKE[script][l] ??= c;
}

function scriptOf(ch: string): Script | undefined {
	for (const [name, re] of SCRIPTS) if (re.test(ch)) return name;
	return undefined;
}

/** The script most of the text's letters (of the four that look alike) are written in. */
function dominantScript(text: string): Script {
	const n: Record<Script, number> = { Latin: 0, Cyrillic: 0, Greek: 0, Armenian: 0 };
	for (const m of text.matchAll(/\p{L}/gu)) {
		const s = scriptOf(m[0]);
		if (s !== undefined) n[s]++;
	}
	let best: Script = "Latin";
	for (const s of ["Cyrillic", "Greek", "Armenian"] as const) if (n[s] > n[best]) best = s;
	return best;
}

/**
 * Words disguised as words of the text's dominant script: every letter of another script in them imitates one of its
 * letters, and most of the word's letters are of that script (English text, a Latin word with a Cyrillic "е" in it:
 * "tеst"), or, in Latin text, a word wholly or mostly of look-alikes among Latin words (an all-Cyrillic "раураl"). A
 * word whose script is not the text's (a Russian word with a Latin typo inside English text, an English word with a
 * Cyrillic one inside Russian text) is a foreign word misspelt, not a disguise. In Cyrillic, Greek or Armenian text, a
 * word of that script with look-alike Latin letters is a native-homoglyph: a typo looks the same, so the scan reports
 * it only when its spelling recurs in several records. Real Cyrillic or Greek text is left alone.
 */
function homoglyphWords(text: string): CharHit[] {
	const hits: CharHit[] = [];
	const dominant = dominantScript(text);
	const latinWords = (text.match(/\p{Script=Latin}{2,}/gu) ?? []).length;
	for (const m of text.matchAll(WORD)) {
		const w = m[0];
		if (!LOOKALIKE_SCRIPT.test(w) && dominant === "Latin") continue;
		let own = 0;
		let foreign = 0;
		let disguise = true;
		for (const ch of w) {
			const s = scriptOf(ch);
			if (s === undefined) continue;
			if (s === dominant) own++;
			else {
				foreign++;
				const imitates =
					dominant === "Latin" ? CONFUSABLE[ch] : s === "Latin" ? LATIN_LOOKALIKE[dominant][ch] : undefined;
				if (imitates === undefined) disguise = false;
			}
		}
		if (foreign === 0 || !disguise) continue;
		let hit = own >= foreign;
		// wholly or mostly look-alike, at least 3 letters, in a text that is otherwise Latin
		if (!hit && dominant === "Latin") hit = own + foreign >= 3 && latinWords >= 3 && !hasForeignNeighbours(text, w);
		if (!hit) continue;
		const at = [...text.slice(0, m.index)].length;
		if (dominant === "Latin")
			hits.push({ what: w, kind: "homoglyph", at, looksLike: [...w].map((c) => CONFUSABLE[c] ?? c).join("") });
		else
			hits.push({
				what: w,
				kind: "native-homoglyph",
				at,
				looksLike: [...w].map((c) => LATIN_LOOKALIKE[dominant][c] ?? c).join(""),
			});
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
