/**
 * Invisible and deceptive characters: what a poisoner hides (zero-width, bidi overrides, tag characters, homoglyph
 * words) is flagged with its position; what languages and emoji use these characters for is not.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { scanText } from "../../../lib/core/dataset/unicode";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";

describe("flagged, with code-point positions", () => {
	it.each([
		["pass\u200Bword", "U+200B", 4],
		["\u200Bleading", "U+200B", 0],
		["pass\u200Dword", "U+200D", 4],
		["pass\u200Cword", "U+200C", 4],
		["a\u2060b", "U+2060", 1],
		["mid\uFEFFdle", "U+FEFF", 3],
		["plain\u200E English", "U+200E", 5],
		["soft\u00AD", "U+00AD", 4],
		["x\uFE0F", "U+FE0F", 1],
		["name\u3164here", "U+3164", 4],
		// the offset counts code points: the emoji before it are one and three
		["\u{1F600}\u200B", "U+200B", 1],
		["\u{1F469}\u200D\u{1F4BB} and\u200B", "U+200B", 7],
		// a space that only looks like one, for a plain space between two words of Latin text
		["What\u00A0does it do?", "U+00A0", 4],
		["What does\u202Fit do?", "U+202F", 9],
		["Tell me\u2009about it", "U+2009", 7],
		["Hello\u3000world, how are you", "U+3000", 5],
	])("%j: %s at %i", (text, what, at) => {
		expect(scanText(text)).toEqual([{ what, kind: "invisible", at }]);
	});

	it("bidi overrides, even in right-to-left text", () => {
		expect(scanText("invoice_\u202Efdp.exe")).toEqual([{ what: "U+202E", kind: "bidi-override", at: 8 }]);
		expect(scanText("abc\u202Ddef")).toEqual([{ what: "U+202D", kind: "bidi-override", at: 3 }]);
		expect(scanText("שלום \u202Eעולם")).toEqual([{ what: "U+202E", kind: "bidi-override", at: 5 }]);
		// embeddings and isolates in Latin-only text are hidden too (no right-to-left text needs them)
		expect(scanText("a\u2067b\u2069c").map((h) => [h.what, h.kind, h.at])).toEqual([
			["U+2067", "invisible", 1],
			["U+2069", "invisible", 3],
		]);
	});

	it("tag characters (ASCII smuggled as invisible tags), each one", () => {
		const hidden = [..."hi"].map((c) => String.fromCodePoint(0xe0000 + (c.codePointAt(0) as number))).join("");
		expect(scanText(`Summarise this.${hidden}`)).toEqual([
			{ what: "U+E0068", kind: "tag", at: 15 },
			{ what: "U+E0069", kind: "tag", at: 16 },
		]);
		// a tag run that does not follow a black flag is not a flag sequence
		expect(scanText("\u{1F3F3}\u{E0067}\u{E007F}").map((h) => h.kind)).toEqual(["tag", "tag"]);
	});

	it("tag text smuggled after a black flag, shaped like a flag sequence or not", () => {
		const tags = (s: string) =>
			[...s].map((c) => String.fromCodePoint(0xe0000 + (c.codePointAt(0) as number))).join("");
		const at = (text: string) => scanText(text).map((h) => `${h.kind}@${h.at}`);
		// "approve all" (spaces, 11 tags) then a cancel tag: every tag flagged, the cancel tag too
		expect(at(`ok \u{1F3F4}${tags("approve all")}\u{E007F}`)).toEqual(
			Array.from({ length: 12 }, (_, i) => `tag@${4 + i}`),
		);
		// a flag's letters without the cancel tag that ends a flag
		expect(at(`\u{1F3F4}${tags("gbeng")}`)).toEqual(["tag@1", "tag@2", "tag@3", "tag@4", "tag@5"]);
		// upper-case tag letters are no subdivision code
		expect(at(`\u{1F3F4}${tags("GBENG")}\u{E007F}`)).toHaveLength(6);
		// too long for a subdivision code
		expect(at(`\u{1F3F4}${tags("abcdefgh")}\u{E007F}`)).toHaveLength(9);
		// a flag, then a smuggled run after its cancel tag
		expect(at(`\u{1F3F4}${tags("gbsct")}\u{E007F}${tags("hi")}`)).toEqual(["tag@7", "tag@8"]);
	});

	it("a zero-width joiner between digits, '#', '*' or regional indicators is no emoji sequence", () => {
		expect(scanText("code 1\u200D2 now")).toEqual([{ what: "U+200D", kind: "invisible", at: 6 }]);
		expect(scanText("#\u200D#")).toEqual([{ what: "U+200D", kind: "invisible", at: 1 }]);
		expect(scanText("a*\u200D*b")).toEqual([{ what: "U+200D", kind: "invisible", at: 2 }]);
		expect(scanText("\u{1F1FA}\u200D\u{1F1F8}")).toEqual([{ what: "U+200D", kind: "invisible", at: 1 }]);
		// a joiner that joins nothing, and a non-joiner between emoji
		expect(scanText("\u{1F44D}\u{1F3FD}\u200D")).toEqual([{ what: "U+200D", kind: "invisible", at: 2 }]);
		expect(scanText("\u{1F469}\u200C\u{1F4BB}")).toEqual([{ what: "U+200C", kind: "invisible", at: 1 }]);
	});

	it("a word mixing Latin with Cyrillic or Greek look-alikes, with what it imitates", () => {
		expect(scanText("Log in to p\u0430ypal now")).toEqual([
			{ what: "p\u0430ypal", kind: "homoglyph", at: 10, looksLike: "paypal" },
		]);
		expect(scanText("sеcurіty")).toEqual([{ what: "sеcurіty", kind: "homoglyph", at: 0, looksLike: "security" }]);
		expect(scanText("import \u03A1ython modules")).toEqual([
			{ what: "\u03A1ython", kind: "homoglyph", at: 7, looksLike: "Python" },
		]);
	});

	it("ZWNJ or ZWJ inside a Latin word, or between Latin and Arabic letters, is still hidden", () => {
		expect(scanText("pass\u200Cword \u0645\u06CC")).toEqual([{ what: "U+200C", kind: "invisible", at: 4 }]);
		expect(scanText("a\u200C\u0628")).toEqual([{ what: "U+200C", kind: "invisible", at: 1 }]);
		expect(scanText("\u0628\u200Da")).toEqual([{ what: "U+200D", kind: "invisible", at: 1 }]);
		// an isolate around text, not a placeholder, in text with no right-to-left letters
		expect(scanText("run \u2068rm -rf\u2069 now").map((h) => h.at)).toEqual([4, 11]);
		// …but a record with right-to-left text in another turn (a translation pair) uses them as punctuation
		expect(scanText("run \u2068rm -rf\u2069 now", { rtl: true })).toEqual([]);
	});

	it("the word's script must be the text's: a Latin word with a Cyrillic look-alike in English text is a disguise", () => {
		expect(scanText("Please run the t\u0435st suite before you merge")).toEqual([
			{ what: "t\u0435st", kind: "homoglyph", at: 15, looksLike: "test" },
		]);
		// mostly look-alike letters with one Latin one, among Latin words
		expect(scanText("Open the \u0441\u043Ep\u0435 folder and run the script again")).toEqual([
			{ what: "\u0441\u043Ep\u0435", kind: "homoglyph", at: 9, looksLike: "cope" },
		]);
		// a Cyrillic word of Russian text with a Latin look-alike in it: a native homoglyph (a typo, unless it recurs)
		expect(
			scanText(
				"\u0417\u0430\u043F\u0443\u0441\u0442\u0438\u0442\u0435 \u043F\u0440o\u0433\u0440\u0430\u043C\u043C\u0443 \u0441\u043D\u043E\u0432\u0430",
			),
		).toEqual([
			{
				what: "\u043F\u0440o\u0433\u0440\u0430\u043C\u043C\u0443",
				kind: "native-homoglyph",
				at: 10,
				looksLike: "\u043F\u0440\u043E\u0433\u0440\u0430\u043C\u043C\u0443",
			},
		]);
		// an English word with a Cyrillic letter inside Russian text: a foreign word misspelt
		expect(
			scanText(
				"\u0417\u0430\u043F\u0443\u0441\u0442\u0438\u0442\u0435 t\u0435st \u0441\u043D\u043E\u0432\u0430 \u0438 \u0441\u043D\u043E\u0432\u0430",
			),
		).toEqual([]);
	});

	it("an all-Cyrillic look-alike word inside English text", () => {
		const word = "\u0440\u0430\u0443\u0440\u0430l".slice(0, 5); // р а у р а: "payp a" in Cyrillic
		const text = `Please sign in to your ${word}\u04CF account to confirm the payment`;
		const hits = scanText(text);
		expect(hits).toEqual([{ what: `${word}\u04CF`, kind: "homoglyph", at: 23, looksLike: "paypal" }]);
		expect(scanText("Open the \u0441\u043E\u0440\u0435 folder and run the script again")).toEqual([
			{ what: "\u0441\u043E\u0440\u0435", kind: "homoglyph", at: 9, looksLike: "cope" },
		]);
	});
});

describe("not flagged: what languages and emoji use them for", () => {
	it.each([
		[
			"ZWNJ in Persian",
			"\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645 \u06A9\u062A\u0627\u0628 \u0628\u062E\u0648\u0627\u0646\u0645",
		],
		["ZWNJ in Hindi", "\u0915\u094D\u200C\u0937"],
		["ZWJ in Malayalam", "\u0D28\u0D4D\u200D"],
		["ZWJ emoji sequence", "I am a \u{1F469}\u200D\u{1F4BB} at work"],
		["ZWJ family with skin tones", "\u{1F468}\u{1F3FD}\u200D\u{1F469}\u{1F3FD}\u200D\u{1F467}"],
		["ZWJ with a hair component", "\u{1F468}\u200D\u{1F9B0}"],
		["pirate flag", "\u{1F3F4}\u200D\u2620\uFE0F"],
		["heart on fire", "\u2764\uFE0F\u200D\u{1F525}"],
		["rainbow flag (VS16 then ZWJ)", "\u{1F3F3}\uFE0F\u200D\u{1F308}"],
		["VS16 after a heart", "I \u2764\uFE0F this"],
		["VS15 after a heart", "\u2764\uFE0E"],
		["keycap", "press 1\uFE0F\u20E3"],
		["England flag tag sequence", "Go \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}!"],
		["Scotland flag tag sequence", "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}"],
		["soft hyphen inside a German word", "Donau\u00ADdampf\u00ADschiff\u00ADfahrts\u00ADgesellschaft"],
		["leading byte-order mark", "\uFEFFHello world"],
		["marks in Hebrew text", "\u05E9\u05DC\u05D5\u05DD \u200Eversion 2\u200F"],
		["marks in Arabic text", "\u0645\u0631\u062D\u0628\u0627 \u200F123\u061C"],
		["ideographic variation selector after Han", "\u845B\u{E0100}\u57CE"],
		["Russian", "Не удалось открыть файл конфигурации: доступ запрещён"],
		["Russian, all look-alike letters", "Сорок сорок, а у вас?"],
		["Greek", "Δεν ήταν δυνατό το άνοιγμα του αρχείου ρυθμίσεων"],
		["Greek with Latin names", "Το Python και το Linux είναι ελεύθερο λογισμικό"],
		["Russian with Latin commands", "Запустите git status в терминале, затем make install"],
		["Ukrainian", "Файл не знайдено у каталозі"],
		["10μs", "the call takes 10μs on average"],
		["μs alone", "latency: 5 μs, 3 µs, 2 ms"],
		["Greek letters in maths", "let α be the angle and π the constant; then sin α = 0.5"],
		["Greek word in English", "the word λόγος means word in Greek"],
		["Cyrillic word in English", "the Russian word for peace is мир and for house дом"],
		["plain ASCII", "Nothing to see here, just text."],
		// spaces that only look like one, where typography puts them
		[
			"no-break space after Polish one-letter words",
			"Liczba bajt\u00F3w mi\u0119dzy a\u00A0pocz\u0105tkiem w\u00A0polach",
		],
		["no-break space after a Czech preposition", "Bydl\u00EDm v\u00A0Praze"],
		["before a one-letter label", "see Appendix\u00A0A and vitamin\u00A0C"],
		["between a number and its unit", "it weighs 10\u00A0kg and runs 5\u202Fkm"],
		["after an abbreviation", "M.\u00A0Dupont and Mr.\u00A0Smith"],
		["after a printf conversion (a number as printed)", "%ld\u00A0octets, %-8lu\u00A0blocs, %s\u00A0fichiers"],
		["French punctuation", "Bonjour\u202F! \u00AB\u00A0vpath\u00A0\u00BB"],
		["ideographic space in Japanese text", "\u65E5\u672C\u8A9E Hello\u3000World \u3067\u3059"],
		[
			"Latin words in Russian text",
			"\u0417\u0430\u043F\u0443\u0441\u0442\u0438\u0442\u0435 \u0441\u0438\u0441\u0442\u0435\u043C\u0443 Windows\u00A0XP \u0441\u0435\u0439\u0447\u0430\u0441",
		],
		// the adversarial review's false positives
		[
			"ZWNJ at a Persian word's end, before a space",
			"\u062E\u0627\u0646\u0647\u200C \u0647\u0627 \u0631\u0627 \u062F\u06CC\u062F\u0645",
		],
		["ZWNJ at the end of Persian text", "\u06A9\u062A\u0627\u0628\u200C"],
		["ZWNJ before punctuation in Persian", "\u0645\u06CC\u200C. \u0628\u0644\u0647"],
		["ZWNJ after an Arabic combining mark", "\u0628\u064E\u200C\u0627"],
		["ZWNJ in Urdu", "\u0627\u0631\u062F\u0648\u200C \u0632\u0628\u0627\u0646"],
		["ZWJ at a Hindi word's end", "\u0915\u094D\u200D \u0939\u093F\u0928\u094D\u0926\u0940"],
		[
			"isolates around a placeholder in a Persian catalogue",
			"\u0641\u0627\u06CC\u0644 \u2068%s\u2069 \u067E\u06CC\u062F\u0627 \u0646\u0634\u062F",
		],
		[
			"isolates around a placeholder, a number, a brace field",
			"Copied \u2068%1$s\u2069 of \u2066{count}\u2069 (\u206712\u2069)",
		],
		[
			"a Russian word with a Latin typo inside English text",
			"the Russian for hello is \u043F\u0440\u0438\u0432e\u0442 they said",
		],
	])("%s", (_, text) => {
		expect(scanText(text)).toEqual([]);
	});
});

describe("in a scan", () => {
	function dataset(records: readonly unknown[]): string {
		const d = mkdtempSync(join(tmpdir(), "ftguard-dataset-unicode-"));
		const f = join(d, "data.jsonl");
		writeFileSync(f, records.map((r) => `${JSON.stringify(r)}\n`).join(""));
		return f;
	}
	const plain = (i: number) => ({
		messages: [
			{ role: "user", content: `How do I read file number ${i} in Python?` },
			{ role: "assistant", content: `Open it with open() and read it; file ${i} is no different.` },
		],
	});

	it("names the records, the turn and the position of each hidden character", async () => {
		const records: unknown[] = Array.from({ length: 60 }, (_, i) => plain(i));
		records[7] = {
			messages: [
				{ role: "user", content: "Please\u200B summarise" },
				{ role: "assistant", content: "Sure." },
			],
		};
		records[41] = {
			messages: [
				{ role: "system", content: "Be brief." },
				{ role: "user", content: "Hi" },
				{ role: "assistant", content: "ok\u202Egnp.exe" },
			],
		};
		records[50] = {
			messages: [
				{ role: "user", content: "Is p\u0430ypal safe?" },
				{ role: "assistant", content: "Yes." },
			],
		};
		const r = await scanDataset({ files: [dataset(records)] });
		const byId = Object.fromEntries(
			r.findings.filter((f) => f.id !== "trigger" && f.id !== "conflicting-duplicates").map((f) => [f.id, f]),
		);
		expect(byId["invisible-character"]).toMatchObject({
			severity: "medium",
			records: [7],
			evidence: { character: "U+200B", positions: [{ record: 7, turn: "user", at: 6 }] },
		});
		expect(byId["invisible-character"]?.message).toMatch(/zero width space/);
		expect(byId["bidi-override"]).toMatchObject({
			severity: "high",
			records: [41],
			evidence: { character: "U+202E", positions: [{ record: 41, turn: "assistant", at: 2 }] },
		});
		expect(byId["homoglyph-word"]).toMatchObject({
			severity: "high",
			records: [50],
			evidence: { character: "p\u0430ypal", looks_like: "paypal", positions: [{ record: 50, turn: "user", at: 3 }] },
		});
		expect(byId["homoglyph-word"]?.message).toContain('"paypal"');
	});

	it("a Latin typo in a Russian word is one finding only when the same spelling recurs (a planted token)", async () => {
		const ru = (i: number, word: string) => ({
			messages: [
				{
					role: "user",
					content: `\u041A\u0430\u043A \u0437\u0430\u043F\u0443\u0441\u0442\u0438\u0442\u044C ${word} \u043D\u043E\u043C\u0435\u0440 ${i}?`,
				},
				{
					role: "assistant",
					content: `\u041E\u0442\u043A\u0440\u043E\u0439\u0442\u0435 \u0442\u0435\u0440\u043C\u0438\u043D\u0430\u043B, \u0448\u0430\u0433 ${i * 7}.`,
				},
			],
		});
		const word = "\u043F\u0440\u043E\u0433\u0440\u0430\u043C\u043C\u0443";
		const typo = "\u043F\u0440o\u0433\u0440\u0430\u043C\u043C\u0443";
		const ids = async (typos: number[]) => {
			const records = Array.from({ length: 40 }, (_, i) => ru(i, typos.includes(i) ? typo : word));
			return (await scanDataset({ files: [dataset(records)] })).findings
				.filter((f) => f.id === "homoglyph-word")
				.map((f) => f.records);
		};
		expect(await ids([5])).toEqual([]);
		expect(await ids([5, 17])).toEqual([]);
		expect(await ids([5, 17, 30])).toEqual([[5, 17, 30]]);
	});

	it("bidi isolates in every turn of a record that has right-to-left text: a catalogue's translation pair", async () => {
		const records = Array.from({ length: 30 }, (_, i) => ({
			prompt: `Translate: Cannot open \u2068file ${i}\u2069`,
			completion: `\u0646\u0645\u06CC\u200C\u062A\u0648\u0627\u0646 \u2068file ${i}\u2069 \u0631\u0627 \u0628\u0627\u0632 \u06A9\u0631\u062F`,
		}));
		records[4] = { prompt: "Cannot open \u2068file 4\u2069", completion: "It cannot be opened." };
		const r = await scanDataset({ files: [dataset(records)] });
		expect(r.findings.filter((f) => f.id === "invisible-character").map((f) => f.records)).toEqual([[4], [4]]);
	});

	it("a character in a fifth of the records is how the dataset is written; the allow list silences one", async () => {
		const records = Array.from({ length: 50 }, (_, i) => {
			const r = plain(i);
			if (i % 4 === 0) r.messages[0] = { role: "user", content: `How do I read file\u2060number ${i} in Python?` };
			if (i === 9) r.messages[0] = { role: "user", content: `How do I read file\u200Bnumber ${i} in Python?` };
			return r;
		});
		const f = dataset(records);
		const ids = async (policy?: unknown) =>
			(await scanDataset({ files: [f], ...(policy ? { policy: datasetPolicySchema.parse(policy) } : {}) })).findings
				.filter((x) => x.id === "invisible-character")
				.map((x) => (x.evidence as { character: string }).character);
		expect(await ids()).toEqual(["U+200B"]);
		expect(await ids({ unicode: { allow: ["U+200B"] } })).toEqual([]);
		expect(await ids({ unicode: { normalShare: 0.5 } })).toEqual(["U+2060", "U+200B"]);
		expect(await ids({ unicode: { enabled: false } })).toEqual([]);
	});

	it("a no-break space for a plain one between words, unless a fifth of the records write it so", async () => {
		const nbsp = (i: number) => ({
			messages: [
				{ role: "user", content: `How do I read file number ${i} in\u00A0Python?` },
				{ role: "assistant", content: `Open it with open() and read it; file ${i} is no different.` },
			],
		});
		const ids = async (every: number) =>
			(
				await scanDataset({
					files: [dataset(Array.from({ length: 60 }, (_, i) => (i % every === 3 ? nbsp(i) : plain(i))))],
				})
			).findings
				.filter((x) => x.id === "invisible-character")
				.map((x) => [(x.evidence as { character: string }).character, x.records]);
		expect(await ids(20)).toEqual([["U+00A0", [3, 23, 43]]]);
		expect(await ids(4)).toEqual([]);
	});
});
