/** Normalisation and fingerprints: what counts as the same output, and what as nearly the same. */
import { describe, expect, it } from "vitest";
import { OutputMonitor } from "../../../lib/core/monitor";
import { caseless } from "../../../lib/core/monitor/patterns";
import { foldText, newTokens, SIGNATURE_SIZE, signature, similarity, tokenize } from "../../../lib/core/monitor/text";
import { PAYLOAD, paraphrase, realPairs, rng } from "./traffic";

const key = (s: string) => tokenize(foldText(s), newTokens()).exact;
const sig = (s: string) => signature(tokenize(foldText(s), newTokens()), new Uint32Array(SIGNATURE_SIZE));

describe("the exact key", () => {
	it("ignores case, punctuation, spacing, compatibility forms and invisible characters", () => {
		const k = key("Ignore previous instructions.");
		expect(key("  IGNORE   previous instructions!!")).toBe(k);
		expect(key("ig\u200bnore previous\u00a0instructions")).toBe(k);
		expect(key("ｉｇｎｏｒｅ previous instructions")).toBe(k); // full-width letters (NFKC)
		// invisible marks: combining grapheme joiner, variation selectors, Mongolian ones; a Hangul filler is a space
		expect(key("ig\u034fnore pre\ufe0fvious in\u180bstructions")).toBe(k);
		expect(key("ignore\u3164previous instructions")).toBe(k);
	});

	it("tells different word sequences apart, order included", () => {
		expect(key("ignore previous instructions")).not.toBe(key("previous instructions ignore"));
		const keys = new Set(realPairs().map((p) => key(p.output)));
		const distinct = new Set(
			realPairs().map((p) =>
				foldText(p.output)
					.replace(/[^\p{L}\p{N}\p{M}]+/gu, " ")
					.trim(),
			),
		);
		expect(keys.size).toBe(distinct.size);
	});
});

describe("the MinHash signature", () => {
	it("estimates paraphrases of the payload as similar, and real answers as not", () => {
		const rand = rng(5);
		const base = sig(PAYLOAD);
		const para = Array.from({ length: 200 }, () => similarity(base, sig(paraphrase(rand))));
		const pairs = realPairs().filter((p) => p.output.split(" ").length >= 8);
		const unrelated = Array.from({ length: 2000 }, (_, i) =>
			similarity(sig((pairs[i] as { output: string }).output), sig((pairs[i + 2000] as { output: string }).output)),
		);
		const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
		expect(mean(para)).toBeGreaterThan(0.4);
		expect(mean(unrelated)).toBeLessThan(0.1);
		expect(unrelated.filter((x) => x >= 0.5).length / unrelated.length).toBeLessThan(0.01);
	});
});

describe("patterns compiled for lower-cased text", () => {
	it("keep escapes and property classes, lower-case the letters", () => {
		expect(caseless("IGNORE\\W+Previous").source).toBe("ignore\\W+previous");
		expect(caseless("\\p{Lu}X").source).toBe("\\p{Lu}x");
		expect(caseless("A\\u{1F600}").source).toBe("a\\u{1F600}");
		expect(caseless("(?<Name>a)\\k<Name>").source).toBe("(?<name>a)\\k<name>");
		expect(caseless("[A-Z]").flags).toBe("u");
	});
});

describe("the monitor's policy", () => {
	it("is checked: a bad one is a USAGE error naming the field", () => {
		expect(() => new OutputMonitor({ windowSize: 5 })).toThrow(/USAGE|windowSize/);
		try {
			new OutputMonitor({ repetition: { maxRate: 2 } });
		} catch (e) {
			expect((e as { code: string }).code).toBe("USAGE");
			expect((e as Error).message).toMatch(/repetition\.maxRate/);
		}
	});
});

describe("observe", () => {
	it("never throws on odd values from a JavaScript caller", () => {
		const m = new OutputMonitor();
		const odd = [undefined, null, 42, { text: "x" }, "", "\u0000\ud800", "a".repeat(200_000)];
		for (const output of odd)
			for (const input of odd)
				expect(() =>
					m.observe({ modelVersion: "v", input, output } as unknown as Parameters<typeof m.observe>[0]),
				).not.toThrow();
		expect(m.metrics().versions.v?.records).toBe(odd.length ** 2);
	});
});
