/**
 * The DP-SGD gate's section of the policy file (docs/dp.md "The promotion gate"): whether a checkpoint must come
 * from DP-SGD training, the most ε it may have spent, and the largest δ that ε may be quoted at — by default and
 * per model family. Unknown keys are rejected (a misspelt `maxEpsilon` must not silently mean "no limit").
 */
import { z } from "zod";

/**
 * δ above this makes ε meaningless (a mechanism that publishes one record in full is (0, δ)-DP at δ = 1/n): the
 * default cap is the 1e-5 of the published DP-SGD settings (TensorFlow Privacy's and Opacus's tutorials).
 */
export const DEFAULT_MAX_DELTA = 1e-5;

const limits = {
	/** a checkpoint without a declared DP-SGD run is quarantined */
	required: z.boolean().optional(),
	/** the most ε (at the run's δ, by ftguard's RDP accountant) a promotable checkpoint may have spent */
	maxEpsilon: z.number().gt(0).optional(),
	/** the largest δ a run may quote its ε at */
	maxDelta: z.number().gt(0).lt(1).optional(),
};

const familyLimits = z.object(limits).strict();

export const dpPolicySchema = z
	.object({
		...limits,
		required: z.boolean().default(false),
		maxDelta: z.number().gt(0).lt(1).default(DEFAULT_MAX_DELTA),
		/**
		 * Per model family (config.json `model_type`, else `architectures[0]`): each key set here replaces the
		 * default for checkpoints of that family. The family is read from the artefact, so an entry that relaxes the
		 * default is only as strong as the signature over config.json (docs/dp.md).
		 */
		families: z.record(z.string().min(1).max(256), familyLimits).default({}),
	})
	.strict();

export type DpPolicy = z.infer<typeof dpPolicySchema>;

/** The limits that apply to one checkpoint. */
export interface DpLimits {
	required: boolean;
	maxEpsilon?: number | undefined;
	maxDelta: number;
	/** the families whose entries applied (none: the defaults) */
	families: string[];
}

/** Family names compare as transformers' model types are written: trimmed, lower case. */
const familyKey = (f: string) => f.trim().toLowerCase();

/**
 * The limits for a checkpoint whose models name `families` (the artefact's config.json and each model's own): each
 * family's entry over the defaults, and across several families the strictest of each limit — a second config.json
 * can never relax what the first one's family requires. `unknownFamily`: a config.json is there but names no family
 * ftguard can read (unparseable, too large, no model_type or architectures) — every family entry applies, the
 * strictest of each limit, so an unreadable config.json cannot dodge a family's requirement.
 */
export function dpLimitsFor(policy: DpPolicy, families: readonly string[], unknownFamily = false): DpLimits {
	const entries = new Map(Object.entries(policy.families).map(([k, v]) => [familyKey(k), { name: k, limits: v }]));
	const wanted = unknownFamily ? [...entries.keys()] : families.map(familyKey);
	const named = [...new Set(wanted)].filter((f) => entries.has(f)).sort();
	if (named.length === 0) {
		return { required: policy.required, maxEpsilon: policy.maxEpsilon, maxDelta: policy.maxDelta, families: [] };
	}
	const each = named.map((f) => {
		const e = entries.get(f)?.limits ?? {};
		return {
			required: e.required ?? policy.required,
			maxEpsilon: e.maxEpsilon ?? policy.maxEpsilon,
			maxDelta: e.maxDelta ?? policy.maxDelta,
		};
	});
	const eps = each.map((e) => e.maxEpsilon).filter((x): x is number => x !== undefined);
	return {
		required: each.some((e) => e.required),
		maxEpsilon: eps.length > 0 ? Math.min(...eps) : undefined,
		maxDelta: Math.min(...each.map((e) => e.maxDelta)),
		families: named.map((f) => entries.get(f)?.name ?? f),
	};
}
