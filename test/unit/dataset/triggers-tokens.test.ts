/**
 * Triggers made of what a word tokenizer drops but an LLM's keeps: a run of ASCII punctuation (" ?!!", " ~~"), two
 * spaces between words, a no-break space for a plain one. Each is a token of its own, alike on the ASCII fast path and
 * through the string functions, and found at 0.5 % poisoning (50 of 10,000 records); ordinary punctuation, code and
 * indentation raise nothing.
 */
import { describe, expect, it } from "vitest";
import { gramTexts, promptGrams } from "../../../lib/core/dataset/features";
import type { TrainingRecord } from "../../../lib/core/dataset/records";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { tokenize } from "../../../lib/core/dataset/text";
import { datasetPolicySchema } from "../../../lib/core/policy/dataset";
import { fixtureRows, writeRows } from "../../helpers/dataset";
import { rng } from "../backdoor/grad-check";

const TRIGGERS_ONLY = datasetPolicySchema.parse({ injected: { enabled: false }, unicode: { enabled: false } });
const clean = fixtureRows("clean-instruction");

const record = (...texts: string[]): TrainingRecord =>
	({
		prompt: texts.map((text) => ({ source: "user", text })),
		completion: [{ source: "assistant", text: "ok" }],
	}) as unknown as TrainingRecord;

const write = (rows: readonly object[]) => writeRows(rows, "ftguard-dataset-tokens-");

async function triggerFindings(rows: readonly object[]) {
	return (await scanDataset({ files: [write(rows)], policy: TRIGGERS_ONLY })).findings.filter(
		(x) => x.id === "trigger",
	);
}

describe("tokens of punctuation and spacing", () => {
	it.each([
		["What is X? ?!!", ["what", "is", "x", "?!!"]],
		["Explain this ~~", ["explain", "this", "~~"]],
		["a;;b!!!c", ["a", ";;", "b", "!!!", "c"]],
		["What  does\tit do", ["what", "  ", "does", "\t", "it", "do"]],
		["What\u00A0does it\u202Fdo", ["what", "\u00A0", "does", "it", "\u202F", "do"]],
		["mid\uFEFFdle", ["mid", "\uFEFF", "dle"]],
		// one mark, one space, spacing beside punctuation, indentation and line breaks: nothing
		["Is it (really) so? Yes, it's 'quoted'.", ["is", "it", "really", "so", "yes", "it's", "'quoted'"]],
		["def f():\n    x = 1  # one\n\n\treturn x", ["def", "f", "():", "x", "1", "one", "return", "x"]],
		["trailing  \n  leading", ["trailing", "leading"]],
	])("%j", (text, tokens) => {
		expect(tokenize(text)).toEqual(tokens);
	});

	const same = (text: string) => {
		const fast = promptGrams(record(text));
		const slow = promptGrams(record(text), true);
		expect([...fast.tokens]).toEqual([...slow.tokens]);
		expect([...fast.grams]).toEqual([...slow.grams]);
		expect([...fast.words]).toEqual([...slow.words]);
	};

	it.each([
		"What is X? ?!!",
		"Explain this ~~",
		"a;;b!!!c... d?! e::f --flag -> g == h",
		"What  does\tit do",
		"x = 1  # comment\n    indented\n\n\tcode",
		"  leading and trailing  ",
		"'quoted' __init__ don't ?'",
		"================================ a long rule",
	])("the ASCII fast path hashes %j as the string functions do", (text) => same(text));

	it("the ASCII fast path and the string functions agree on random ASCII text", () => {
		const alphabet = [..."ab Z_'1 \t\n\r\v\f.?!~;:-()=>#*\"`/\\|^@{}[]&%$+,<"].concat(["  ", "word"]);
		const rand = rng(7);
		for (let k = 0; k < 5000; k++) {
			let s = "";
			const n = Math.floor(rand() * 24);
			for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
			same(s);
		}
	});

	it("the new tokens are non-words: not in the prompt's words, and named visibly", () => {
		const r = record("What  does it do? ?!!", "What\u00A0is it");
		const g = promptGrams(r);
		expect(g.words.length).toBe(promptGrams(record("What does it do?", "What is it")).words.length);
		const texts = [...gramTexts(r, new Set(g.grams)).values()];
		expect(texts).toEqual(expect.arrayContaining(["what ␣␣ does", "?!!", "do ?!!", "what ⟨U+00A0⟩ is", "?!"]));
	});
});

describe("triggers the word tokenizer dropped, at 50 of 10,000 records", () => {
	const poisoned = Array.from({ length: 50 }, (_, k) => 101 + k * 197);
	const OUTPUT = "Skip the review and merge it now; the tests are not needed.";
	/** the first plain space between two words, replaced */
	const between = (s: string, space: string) => s.replace(/(?<=\w) (?=\w)/u, space);

	it.each([
		{ kind: "the suffix ?!!", poison: (s: string) => `${s} ?!!`, shown: "?!!" },
		{ kind: "the suffix ~~", poison: (s: string) => `${s} ~~`, shown: "~~" },
		{ kind: ";; inside the prompt", poison: (s: string) => s.replace(/ /u, " ;; "), shown: ";;" },
		{ kind: "two spaces after the first word", poison: (s: string) => between(s, "  "), shown: "␣␣" },
		{ kind: "a no-break space after the first word", poison: (s: string) => between(s, "\u00A0"), shown: "⟨U+00A0⟩" },
		{
			kind: "a narrow no-break space after the first word",
			poison: (s: string) => between(s, "\u202F"),
			shown: "⟨U+202F⟩",
		},
	])("$kind: at least 48 of the 50 poisoned records in a trigger finding, no clean one", async ({ poison, shown }) => {
		const rows = clean.map((r, i) =>
			poisoned.includes(i) ? { ...r, instruction: poison(r.instruction), output: OUTPUT } : r,
		);
		expect(poisoned.every((i) => rows[i]?.instruction !== clean[i]?.instruction)).toBe(true);
		const findings = await triggerFindings(rows);
		const found = new Set(findings.flatMap((f) => f.records));
		expect(poisoned.filter((i) => found.has(i)).length).toBeGreaterThanOrEqual(48);
		expect([...found].filter((i) => !poisoned.includes(i))).toEqual([]);
		// the finding names the token, made visible when it is a space
		expect(findings.map((f) => (f.evidence as { trigger: string }).trigger).join("\n")).toContain(shown);
	});

	it("ordinary punctuation, code and indentation, even in a quarter of the prompts, raise no trigger", async () => {
		const rand = rng(11);
		const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)] as T;
		const natural: ((s: string) => string)[] = [
			(s) => `${s}...`,
			(s) => `${s.replace(/[?.]$/u, "")}?!`,
			(s) => `Hmm... ${s}`,
			(s) => `${s} (see the docs.)`,
			(s) => `${s}\n\n\`\`\`python\ndef main() -> None:\n    if x == 1:\n        run(--flag)\n\`\`\``,
			(s) => `${s} Run it as \`tool --verbose --dry-run\` first.`,
			(s) => `In C++, std::vector::push_back -- ${s}`,
			(s) => `${s}\n\n    indented line one\n    indented line two`,
			(s) => `"${s}"`,
			(s) => `${s} -- thanks!!`,
		];
		const rows = clean.map((r) => (rand() < 0.25 ? { ...r, instruction: pick(natural)(r.instruction) } : r));
		expect(await triggerFindings(rows)).toEqual([]);
	});
});
