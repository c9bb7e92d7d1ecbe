/**
 * The dataset scan's section of the policy file: which detectors run, their thresholds, and the severity at or
 * above which a finding fails the scan. Unknown keys are rejected (a misspelt threshold must not fall back silently).
 */
import { z } from "zod";
import { DEFAULT_INJECTED_PATTERNS } from "../dataset/injected";
import { DEFAULT_TRIGGER_OPTIONS } from "../dataset/triggers";
import { regexSchema } from "../schema";

export const SEVERITIES = ["low", "medium", "high", "critical"] as const;
export type DatasetSeverity = (typeof SEVERITIES)[number];

/** Every finding a dataset scan reports (docs/dataset.md), the keys of `severity`. */
export const DATASET_FINDING_IDS = [
	"malformed-record",
	"trigger",
	"injected-output",
	"invisible-character",
	"bidi-override",
	"tag-character",
	"homoglyph-word",
	"exact-duplicate",
	"conflicting-duplicates",
] as const;
export type DatasetFindingId = (typeof DATASET_FINDING_IDS)[number];

const regex = regexSchema;

const triggers = z
	.object({
		enabled: z.boolean().default(true),
		minSupport: z.number().int().min(2).default(DEFAULT_TRIGGER_OPTIONS.minSupport),
		minShare: z.number().gt(0).max(1).default(DEFAULT_TRIGGER_OPTIONS.minShare),
		alpha: z.number().gt(0).lt(1).default(DEFAULT_TRIGGER_OPTIONS.alpha),
		maxTriggerShare: z.number().gt(0).max(1).default(DEFAULT_TRIGGER_OPTIONS.maxTriggerShare),
		maxFeatureShare: z.number().gt(0).max(1).default(DEFAULT_TRIGGER_OPTIONS.maxFeatureShare),
	})
	.strict();

const injected = z
	.object({
		enabled: z.boolean().default(true),
		/** replaces the default list */
		patterns: z.array(regex).default([...DEFAULT_INJECTED_PATTERNS]),
		/** added to the list */
		extraPatterns: z.array(regex).default([]),
	})
	.strict();

const unicode = z
	.object({
		enabled: z.boolean().default(true),
		/** code points never reported, as "U+200B" */
		allow: z.array(z.string().regex(/^U\+[0-9A-F]{4,6}$/, 'a code point as "U+200B"')).default([]),
		/** a code point in at least this share of the records is how the dataset's language is written */
		normalShare: z.number().gt(0).max(1).default(0.2),
	})
	.strict();

const duplicates = z
	.object({
		enabled: z.boolean().default(true),
		conflicts: z.boolean().default(true),
	})
	.strict();

export const datasetPolicySchema = z
	.object({
		/** a finding at or above this severity fails the scan (exit 1) */
		failOn: z.enum(SEVERITIES).default("medium"),
		triggers: triggers.default(triggers.parse({})),
		injected: injected.default(injected.parse({})),
		unicode: unicode.default(unicode.parse({})),
		duplicates: duplicates.default(duplicates.parse({})),
		/** per finding id, a severity that replaces the default one */
		severity: z.partialRecord(z.enum(DATASET_FINDING_IDS), z.enum(SEVERITIES)).default({}),
	})
	.strict();

export type DatasetPolicy = z.infer<typeof datasetPolicySchema>;
export const DEFAULT_DATASET_POLICY: DatasetPolicy = datasetPolicySchema.parse({});
