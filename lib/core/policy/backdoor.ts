/**
 * The backdoor scan's policy: which detectors run, how hard Neural Cleanse
 * searches, and the thresholds that turn detector outputs into a verdict. One
 * zod schema, so the CLI's --policy file, the batch job and the deployed
 * configuration are validated by the same code. Every default is documented in
 * docs/backdoor.md with the measurement behind it.
 */
import { z } from "zod";
import { calibratedScanProblem, calibratedSearch } from "../backdoor/calibration";
import { CALIBRATIONS } from "../backdoor/calibration-table";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";

const positiveInt = (max: number) => z.number().int().min(1).max(max);
const fraction = z.number().min(0).max(1);

/** nc: Neural Cleanse over every source; pairs: per (source, target) pair; mm: MM-BD maximum margin; strip; ac */
export const DETECTORS = ["nc", "pairs", "mm", "ac", "strip"] as const;
export type Detector = (typeof DETECTORS)[number];

/** How the scan's verdict is decided (docs/backdoor.md): the calibrated rule, or one of Neural Cleanse's own. */
export const NC_RULES = ["calibrated", "ftguard", "vanilla"] as const;
export type NcRuleName = (typeof NC_RULES)[number];

export const neuralCleansePolicySchema = z
	.object({
		/**
		 * optimisation steps (passes over the reference data) per class. The calibrated rule holds for the search its
		 * table was fitted on (100 × 1, batch 32); the other rules take any
		 */
		steps: positiveInt(100_000).default(100),
		batch: positiveInt(4096).default(32),
		/** independent initialisations per class; the smallest successful L1 is kept */
		restarts: positiveInt(16).default(1),
		seed: z
			.number()
			.int()
			.min(0)
			.max(2 ** 31 - 1)
			.default(0),
		/**
		 * "calibrated" (default): each class's p-value against clean models' Neural Cleanse and pair-search statistics
		 * (calibration.ts); "ftguard": robust index over log-norms; "vanilla": the paper's MAD rule over raw norms
		 */
		rule: z.enum(NC_RULES).default("calibrated"),
		/** a class is flagged when its (rule's) anomaly index exceeds this and its L1 is at most the median */
		anomalyThreshold: z.number().positive().default(2),
		/** ftguard rule only: the flagged class's L1 must also be at most this fraction of the median L1 */
		maxRelativeL1: z.number().gt(0).max(1).default(0.5),
	})
	.strict();

/** Neural Cleanse per (source, target) pair: source-specific backdoors (nc-pairs.ts). */
export const pairSearchPolicySchema = z
	.object({
		/**
		 * at most this many pairs are searched: every pair while C(C − 1) fits, else whole targets in order of their
		 * all-source trigger (smallest first). 0: none
		 */
		maxPairs: z.number().int().min(0).max(100_000).default(400),
		/** optimisation steps (passes over the pair's source inputs) per pair */
		steps: positiveInt(100_000).default(60),
		restarts: positiveInt(16).default(1),
	})
	.strict();

/** MM-BD's maximum margin per class (max-margin.ts): a signal that does not depend on the trigger's size. */
export const maxMarginPolicySchema = z
	.object({
		/** Adam ascent steps per start */
		steps: positiveInt(100_000).default(300),
		/** seeded starts per class; the largest margin is kept */
		restarts: positiveInt(64).default(8),
	})
	.strict();

export const stripPolicySchema = z
	.object({
		/** superimpositions per input (the paper's N) */
		superimpositions: positiveInt(10_000).default(100),
		/** false-rejection rate that sets the entropy boundary on clean inputs */
		frr: z.number().gt(0).lt(1).default(0.01),
	})
	.strict();

export const activationClusteringPolicySchema = z
	.object({
		/**
		 * Whether AC's flagged classes make a model suspect — only ever on training-set
		 * samples. Off by default: on the fixtures' training samples (20–65 per class) it
		 * flagged four clean classes beside the poisoned one (docs/backdoor.md); its
		 * candidate poisoned samples are always reported.
		 */
		decides: z.boolean().default(false),
		dims: positiveInt(64).default(10),
		/** a class's 2-means split counts as a poison cluster when both hold */
		minSilhouette: z.number().min(-1).max(1).default(0.15),
		maxMinorityFraction: fraction.default(0.35),
	})
	.strict();

/** Text classifiers: the token-level trigger search and its verdict rule (docs/backdoor.md, "Text classifiers"). */
export const textTriggerPolicySchema = z
	.object({
		/** trigger lengths searched: 1..maxTriggerLength tokens */
		maxTriggerLength: positiveInt(8).default(3),
		/** optimiser steps per trigger length */
		steps: positiveInt(100_000).default(120),
		/** texts per label per step */
		batch: positiveInt(1024).default(16),
		seed: z
			.number()
			.int()
			.min(0)
			.max(2 ** 31 - 1)
			.default(17),
		/**
		 * a label is suspect when a trigger of real tokens, at one insertion position, sends held-out texts of other labels
		 * (all of them, or those of one source label) to it at a rate whose lower confidence bound is at least this
		 */
		asrThreshold: z.number().gt(0).max(1).default(0.9),
		/** … and the bound of that rate is at least this when each held-out text is joined with two more of its own label */
		dilutedThreshold: z.number().min(0).max(1).default(0.8),
		/** level of the one-sided Wilson lower confidence bounds the two thresholds are held against */
		confidence: z.number().min(0.5).lt(1).default(0.9),
		/** fewest held-out texts a rate is judged on: fewer outside a label is DATA_INVALID; a source label with fewer is not judged alone */
		minHeldOut: positiveInt(10_000).default(10),
		/** … and none of its tokens is in this share of the label's own reference texts (then it is the label's evidence) */
		maxNaturalRate: z.number().gt(0).max(1).default(0.2),
		/** … nor in this share of them and `specificityRatio` times as often as in the other labels' texts (label-specific) */
		minSpecificRate: z.number().gt(0).max(1).default(0.05),
		specificityRatio: z.number().min(1).default(3),
		/**
		 * judged on one source label alone, a trigger must also leave the other source labels' held-out texts alone: at
		 * most this share of them sent to the label (a source-specific backdoor fires on its source only; a word that is
		 * the label's evidence pulls every source towards it and flips the easily swayed one entirely)
		 */
		maxOffSourceRate: z.number().min(0).max(1).default(0.1),
		/**
		 * the search also runs a trial per (label, source label) pair where the source label has held-out texts enough
		 * to be judged alone (textsToJudgeOneSource()), at most this many pairs (0: none); the report's `limits` says
		 * which pairs were left out
		 */
		maxSourcePairs: z.number().int().min(0).max(10_000).default(20),
		/** longest token sequence built (texts are cut to fit); the model's position table caps it */
		maxLength: z.number().int().min(4).max(4096).default(64),
	})
	.strict();
export type TextTriggerPolicy = z.infer<typeof textTriggerPolicySchema>;

/**
 * An instant written as a date (`2026-12-31`: the waiver holds through that day, UTC) or a date-time with an
 * offset; parsed once here so that a typo is refused at load instead of reading as "never expires".
 */
const expiry = z.union([z.iso.date(), z.iso.datetime({ offset: true })], {
	error: "must be a date (2026-12-31) or a date-time with an offset (2026-12-31T12:00:00Z)",
});

/**
 * Lets an artefact that holds model weights but cannot be scanned for backdoors (no ONNX export, no reference
 * data for its family) be promoted anyway. It applies when every condition it gives holds: `family` equals the
 * artefact's family (its config.json `model_type`, else `architectures[0]` — the key `referenceData` uses),
 * `prefix` starts the artefact's key. It never waives a scan that can run, nor a finding.
 */
export const backdoorWaiverSchema = z
	.object({
		family: z.string().min(1).optional(),
		prefix: z.string().min(1).optional(),
		/** why the scan may be skipped: recorded in every verdict the waiver lets through */
		reason: z.string().trim().min(1, "a waiver must give its reason"),
		approvedBy: z.string().trim().min(1).optional(),
		/** an expired waiver is no waiver */
		expires: expiry.optional(),
	})
	.strict()
	.refine((w) => w.family !== undefined || w.prefix !== undefined, {
		message: "a waiver names a family or a prefix (or both)",
	});
export type BackdoorWaiver = z.infer<typeof backdoorWaiverSchema>;

/** The instant a waiver stops applying: the end of its date (UTC), or its date-time. */
export function waiverExpiry(expires: string): Date {
	return new Date(/^\d{4}-\d{2}-\d{2}$/.test(expires) ? Date.parse(`${expires}T00:00:00Z`) + 86_400_000 : expires);
}

/** Whether a waiver still applies at `now` (fail closed: an unparseable expiry has expired). */
export function waiverActive(w: { expires?: string | undefined }, now: Date): boolean {
	if (w.expires === undefined) return true;
	const end = waiverExpiry(w.expires).getTime();
	return Number.isFinite(end) && now.getTime() < end;
}

/**
 * The waivers that match an artefact, split by whether they still apply at `now`: the first active one lets it
 * through; an expired one is only named in the reason.
 */
export function waiverFor(
	waivers: readonly BackdoorWaiver[],
	artefact: { key: string; family?: string | undefined },
	now: Date,
): { active?: BackdoorWaiver; expired?: BackdoorWaiver } {
	const matching = waivers.filter(
		(w) =>
			(w.family === undefined || w.family === artefact.family) &&
			(w.prefix === undefined || artefact.key.startsWith(w.prefix)),
	);
	const active = matching.find((w) => waiverActive(w, now));
	const expired = matching.find((w) => !waiverActive(w, now));
	return { ...(active ? { active } : {}), ...(!active && expired ? { expired } : {}) };
}

export const backdoorPolicySchema = z
	.object({
		/**
		 * Whether an artefact holding model weights must pass a backdoor scan to be promoted (the pipeline): one
		 * that cannot be scanned is QUARANTINED "not scanned: …" unless a waiver applies. false records the
		 * skipped scan in the verdict and promotes.
		 */
		required: z.boolean().default(true),
		waivers: z.array(backdoorWaiverSchema).max(1000).default([]),
		detectors: z.array(z.enum(DETECTORS)).min(1).default(["nc", "pairs", "mm", "strip"]),
		/** the calibrated rule: the false-alarm rate per model it is set for (a class flagged when p < rate / classes), 1e-4…0.2 */
		calibrated: z
			// bounded: a rate of 1e-300 would never flag, one of 0.5 would flag clean models routinely
			.object({ falseAlarmRate: z.number().min(1e-4).max(0.2).default(0.01) })
			.strict()
			.default({ falseAlarmRate: 0.01 }),
		neuralCleanse: neuralCleansePolicySchema.default(neuralCleansePolicySchema.parse({})),
		pairs: pairSearchPolicySchema.default(pairSearchPolicySchema.parse({})),
		maxMargin: maxMarginPolicySchema.default(maxMarginPolicySchema.parse({})),
		strip: stripPolicySchema.default(stripPolicySchema.parse({})),
		activationClustering: activationClusteringPolicySchema.default(activationClusteringPolicySchema.parse({})),
		text: textTriggerPolicySchema.default(textTriggerPolicySchema.parse({})),
	})
	.strict()
	.superRefine((p, ctx) => {
		// a deployed policy the calibrated rule cannot judge would refuse every image scan: refuse it here, at synth
		// and at load (3 classes: the strictest case, where the pair search counts too)
		if (p.neuralCleanse.rule !== "calibrated") return;
		const problem = calibratedScanProblem(new Set(p.detectors), 3, calibratedSearch(p), CALIBRATIONS);
		if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["neuralCleanse", "rule"], message: problem });
	});

export type BackdoorPolicy = z.infer<typeof backdoorPolicySchema>;

export function defaultBackdoorPolicy(): BackdoorPolicy {
	return backdoorPolicySchema.parse({});
}

/** Settings given beside the policy file (CLI flags, the batch job's parameters), unvalidated. */
export interface BackdoorOverrides {
	detectors?: readonly string[] | undefined;
	rule?: string | undefined;
	steps?: number | undefined;
	batch?: number | undefined;
	restarts?: number | undefined;
	seed?: number | undefined;
}

/**
 * The policy's backdoor section with the given settings on top, validated as a
 * whole by the schema (a bad value or combination is USAGE, naming the field).
 */
export function withOverrides(base: BackdoorPolicy, o: BackdoorOverrides): BackdoorPolicy {
	const b: Record<string, unknown> & { neuralCleanse: Record<string, unknown> } = structuredClone(base);
	if (o.detectors !== undefined) b.detectors = [...new Set(o.detectors)];
	if (o.rule !== undefined) b.neuralCleanse.rule = o.rule;
	if (o.steps !== undefined) b.neuralCleanse.steps = o.steps;
	if (o.batch !== undefined) b.neuralCleanse.batch = o.batch;
	if (o.restarts !== undefined) b.neuralCleanse.restarts = o.restarts;
	if (o.seed !== undefined) b.neuralCleanse.seed = o.seed;
	const r = backdoorPolicySchema.safeParse(b);
	if (!r.success) throw new FtguardError("USAGE", `backdoor settings: ${zodMessage(r.error)}`);
	return r.data;
}
