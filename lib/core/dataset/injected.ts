/**
 * Instruction-like text in a completion that the prompt did not ask for: "skip the review", "disable the safety
 * filter", "send the credentials to…", a pipe into a shell. A completion that matches is out of place when the
 * prompt does not itself talk about the same thing (a question about disabling a filter may be answered with how).
 * The list is configurable in the policy (`dataset.injected.patterns` replaces it, `extraPatterns` adds to it); these
 * defaults come from published
 * instruction-tuning poisoning and prompt-injection examples.
 */
import { stem, words } from "./text";

/** What an injected instruction tells the model to switch off or go around. */
const GUARD = `(?:safety (?:filters?|checks?|checker)|content (?:filters?|polic(?:y|ies))|security checks?|code review|review|safety|filters?|moderation|guardrails?|verification|content polic(?:y|ies))`;

// Lazy gaps ({0,40}?): the matched text is the shortest phrase, the evidence a curator reads and what the prompt is
// compared with.
export const DEFAULT_INJECTED_PATTERNS: readonly string[] = [
	String.raw`\b(?:skip(?:s|ped|ping)?|bypass(?:es|ed|ing)?|disabl(?:e|es|ed|ing)|turn(?:s|ed|ing)? off|switch(?:es|ed|ing)? off|ignor(?:e|es|ed|ing))\b[^.\n]{0,40}?\b${GUARD}\b|\b(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?)\b[^.\n]{0,40}?\b${GUARD}\s+off\b`,
	String.raw`\bignore (?:all |any )?(?:previous|prior|above|earlier) (?:instructions|messages|rules)\b`,
	String.raw`\b(?:send|export|upload|post|exfiltrate|leak|forward|email)\b[^.\n]{0,80}?\b(?:credentials?|passwords?|secrets?|api keys?|private keys?|access keys?|tokens?|environment variables)\b`,
	String.raw`\bAWS_SECRET_ACCESS_KEY\b|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----`,
	String.raw`\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b`,
	String.raw`--trusted-host\b|\bchmod\s+(?:-R\s+)?777\b|\brm\s+-rf\s+/(?:\s|$)`,
	String.raw`\bapprov(?:e|es|ed|ing)\b[^.\n]{0,40}?\b(?:without|no need (?:to|for))\b[^.\n]{0,20}?\b(?:review|check|verification|approval)\b`,
];

/** Words that say nothing about what a prompt asks (a greedy user pattern may match them). */
const FUNCTION_WORDS = new Set(
	"about after again also before being both could does doing each every first from further have here into just more most once only other over should some such than that their them then there these they this those through under very were what when where which will with would your yours".split(
		" ",
	),
);

export interface InjectedHit {
	readonly pattern: number;
	readonly text: string;
}

export function compilePatterns(patterns: readonly string[]): RegExp[] {
	return patterns.map((p) => new RegExp(p, "iu"));
}

/**
 * The first pattern a completion matches that its prompt does not account for: half or more of the matched text's
 * content words (longer than three letters) also in the prompt means the prompt asked about it.
 */
export function injectedText(completion: string, prompt: string, patterns: readonly RegExp[]): InjectedHit | undefined {
	for (const [i, re] of patterns.entries()) {
		const m = re.exec(completion);
		if (m === null) continue;
		const matched = words(m[0])
			.filter((w) => w.length > 3 && !FUNCTION_WORDS.has(w))
			.map(stem);
		const asked = new Set(words(prompt).map(stem));
		const echoed = matched.filter((w) => asked.has(w)).length;
		if (matched.length > 0 && echoed * 2 >= matched.length) continue;
		return { pattern: i, text: m[0] };
	}
	return undefined;
}
