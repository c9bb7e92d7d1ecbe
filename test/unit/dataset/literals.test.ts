import { describe, expect, it } from "vitest";
import { Rng } from "../../../lib/core/backdoor/rng";
import { LiteralFilter, requiredLiterals } from "../../../lib/core/dataset/literals";

const sets = (source: string) => requiredLiterals(source)?.map((a) => a.map((s) => [...s].sort()));

describe("requiredLiterals", () => {
	it("reads literal runs, optional parts and alternatives", () => {
		expect(sets("skip(?:s|ped)? the review")).toEqual([
			[["skip the review", "skipped the review", "skips the review"]],
		]);
		expect(sets("curl\\s+\\S+ \\| sh")).toEqual([[[" | sh"], ["curl"]]]); // the longest first
		expect(sets("(?:send|post)\\b.{0,40}password")).toEqual([[["password"], ["post", "send"]]]);
		expect(sets("chmod 777|rm -rf /")).toEqual([[["chmod 777"]], [["rm -rf /"]]]);
		// upper-case ASCII is read in lower case; a small class is a set; a repetition needs what one copy needs
		expect(sets("AWS_[KS]ey")).toEqual([[["aws_key", "aws_sey"]]]);
		expect(sets("(?:ab)+c")).toEqual([[["ab"], ["c"]]]);
	});

	it("assertions consume nothing; a back reference, a set, a property is anything", () => {
		expect(sets("(?<![\\w-])token(?!s)")).toEqual([[["token"]]]);
		expect(sets("\\bkey\\b")).toEqual([[["key"]]]);
		expect(sets("(?<q>['\"])secret\\k<q>")).toEqual([[['"secret', "'secret"]]]);
		expect(sets("\\p{Lu}pass")).toEqual([[["pass"]]]);
		expect(sets("\\u{1F600}x")).toEqual([[["\u{1F600}x"]]]);
	});

	it("is undefined when an alternative needs no literal, or the source cannot be read", () => {
		for (const s of ["a|\\d+", "x?", "[a-z]+", ".*", "(?:a|)b?", "(unclosed", "a)", "(?x)"])
			expect(requiredLiterals(s), s).toBeUndefined();
	});
});

describe("LiteralFilter", () => {
	const filter = (...sources: string[]) =>
		LiteralFilter.of(sources.map((s) => requiredLiterals(s) as string[][][])) as LiteralFilter;

	it("finds the literals anywhere, in any case, and needs every set of one alternative", () => {
		const f = filter("(?:send|post)\\b.{0,40}password", "chmod 777");
		expect(f.test("Please SEND me the PassWord")).toBe(true);
		expect(f.test("the password, sent")).toBe(false);
		expect(f.test("run CHMOD 777 here")).toBe(true);
		expect(f.test("chmod 755")).toBe(false);
		expect(f.test("")).toBe(false);
	});

	it('folds as "iu" does: the long s, the Kelvin sign, final sigma', () => {
		const f = filter("secret", "kelvin", "σοφία");
		expect(f.test("\u017fecret")).toBe(true);
		expect(f.test("\u212aELVIN")).toBe(true);
		expect(f.test("ΣΟΦΊΑ")).toBe(true);
		expect(f.test("ςοφία")).toBe(true);
		expect(/σοφία/iu.test("ςοφία")).toBe(true);
	});

	it("is undefined when its automaton could pass 2^24 entries (thousands of Chinese words in a policy)", () => {
		const words = Array.from({ length: 6000 }, (_, k) =>
			String.fromCharCode(0x4e00 + k, 0x5e00 + (k % 97), 0x6e00 + (k % 89)),
		);
		expect(LiteralFilter.of([[[words]]])).toBeUndefined();
		expect(LiteralFilter.of([[[words.slice(0, 100)]]])?.test(`前${words[7]}后`)).toBe(true);
	});

	// The ASCII automaton (test(text, true)) is the general one restricted to ASCII text: the same answer on every
	// ASCII text, for the injected-output patterns' literals and for random ones; `possible` says per expression what
	// `test` says of the whole.
	it("reads ASCII text as the general automaton does, and tells which expression may match", () => {
		const rng = new Rng(20261207);
		const words = [
			"skip",
			"the",
			"review",
			"rm",
			"-rf",
			"/",
			"curl",
			"|",
			"sh",
			"send",
			"password",
			"e",
			".",
			"é",
			"K",
		];
		const sources = ["skip(?:s|ped)? the review", "rms+-rfs+/", "curl\b.{0,20}|s*sh", "send\b.*password", "e.x"];
		const f = LiteralFilter.of(sources.map((s) => requiredLiterals(s) as string[][][])) as LiteralFilter;
		const singles = sources.map((s) => LiteralFilter.of([requiredLiterals(s) as string[][][]]) as LiteralFilter);
		let passed = 0;
		for (let t = 0; t < 3000; t++) {
			const n = 1 + rng.int(12);
			let text = "";
			for (let k = 0; k < n; k++) text += (k > 0 && rng.uniform() < 0.7 ? " " : "") + words[rng.int(words.length)];
			const ascii = [...text].every((ch) => (ch.codePointAt(0) as number) < 0x80);
			const general = f.test(text);
			if (ascii) expect(f.test(text, true), text).toBe(general);
			const each = f.possible(text);
			expect(
				[...each].some((x) => x === 1),
				text,
			).toBe(general);
			for (const [k, g] of singles.entries()) expect(each[k], `${sources[k]} on ${text}`).toBe(g.test(text) ? 1 : 0);
			if (general) passed++;
		}
		expect(passed).toBeGreaterThan(300);
		expect(passed).toBeLessThan(2900);
	});

	it("a literal beyond the BMP leaves the filter to the expressions", () => {
		expect(LiteralFilter.of([requiredLiterals("\u{10400}x") as string[][][]])).toBeUndefined();
	});

	// Soundness against V8 itself: random expressions over letters that fold in odd ways, random texts; whenever the
	// expression matches, the filter must pass the text. The filter must also reject some texts (it is not "true").
	it("never rejects a text that the expression matches (fuzzed against V8)", () => {
		const rng = new Rng(20261206);
		const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T;
		const letters = ["a", "b", "k", "s", "σ", "é", "K", "S", "ſ", "\u212a", "ς", "Σ", "É", "İ", "i", "-", " "];
		const atoms = [...letters, "[ab]", "[sk]", "[^a]", "\\w", "\\s", ".", "\\u017f", "\\x4b", "\\b", "(?=a)", "(?<!b)"];
		const expr = (depth: number): string => {
			const n = 1 + rng.int(4);
			let out = "";
			for (let k = 0; k < n; k++) {
				let atom = depth > 0 && rng.uniform() < 0.25 ? `(?:${expr(depth - 1)}|${expr(depth - 1)})` : pick(atoms);
				if (rng.uniform() < 0.3) atom += pick(["?", "*", "+", "{2}", "{0,2}", "{1,3}", "+?"]);
				out += atom;
			}
			return out;
		};
		const textLetters = [...letters, "c", "x"];
		let matched = 0;
		let rejected = 0;
		let filters = 0;
		for (let p = 0; p < 400; p++) {
			const source = rng.uniform() < 0.2 ? `${expr(2)}|${expr(2)}` : expr(2);
			let re: RegExp;
			try {
				re = new RegExp(source, "iu");
			} catch {
				continue;
			}
			const needs = requiredLiterals(source);
			if (needs === undefined) continue;
			const f = LiteralFilter.of([needs]);
			if (f === undefined) continue;
			filters++;
			for (let t = 0; t < 200; t++) {
				let text = "";
				const len = rng.int(12);
				for (let k = 0; k < len; k++) text += pick(textLetters);
				if (re.test(text)) {
					matched++;
					expect(f.test(text), `${source} on ${JSON.stringify(text)}`).toBe(true);
				} else if (!f.test(text)) rejected++;
			}
		}
		expect(filters).toBeGreaterThan(150);
		expect(matched).toBeGreaterThan(2000);
		expect(rejected).toBeGreaterThan(2000);
	});
});
