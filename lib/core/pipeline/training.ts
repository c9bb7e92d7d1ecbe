/**
 * The files step's reading of the training job's declaration (ftguard-training.json at the top of the artefact):
 * what the verdict record names about the job, and the DP-SGD gate over it. A declaration that cannot be read is a
 * problem whatever the policy says about DP: the artefact carries claims nobody can check.
 */
import { type DpOutcome, dpGate } from "../dp/gate";
import { toFtguardError } from "../errors";
import { type DpPolicy, dpLimitsFor } from "../policy/dp";
import { parseTrainingMetadata, TRAINING_METADATA, type TrainingMetadata } from "../training/metadata";
import { emfDocument } from "./input-gate";
import { MetricName, SignedResult, TRAINING_DIMENSION, UNDECLARED_JOB_ID } from "./names";
import type { ScanState } from "./types";

/** The declaration's file, as the files step found it. */
export type TrainingMetadataInput =
	| { kind: "absent" }
	| { kind: "read"; bytes: Uint8Array }
	/** the object exists but could not be read (too large, gone, denied) */
	| { kind: "unreadable"; reason: string };

/** The key of the declaration in an artefact: a model directory's top level; a single-file artefact has none. */
export function trainingMetadataKey(artefact: string): string | undefined {
	return artefact.endsWith("/") ? `${artefact}${TRAINING_METADATA}` : undefined;
}

function trainingRecord(m: TrainingMetadata): NonNullable<ScanState["training"]> {
	return {
		...(m.jobId !== undefined ? { jobId: m.jobId } : {}),
		...(m.codeCommit !== undefined ? { codeCommit: m.codeCommit } : {}),
		...(m.baseModel !== undefined ? { baseModel: m.baseModel } : {}),
		...(m.datasetLineageRoot !== undefined ? { datasetLineageRoot: m.datasetLineageRoot } : {}),
	};
}

/**
 * The state's `training` (absent without a readable declaration) and `dp` fields, for an artefact whose models name
 * `families` (its config.json and each model's own); `unknownFamily`: one of those config.json files names no family
 * ftguard can read (dpLimitsFor: every family entry applies).
 */
export function trainingChecks(
	input: TrainingMetadataInput,
	families: readonly string[],
	policy: DpPolicy,
	unknownFamily = false,
): { training?: NonNullable<ScanState["training"]>; dp: DpOutcome } {
	const limits = dpLimitsFor(policy, families, unknownFamily);
	if (input.kind === "absent") return { dp: dpGate(undefined, limits) };
	if (input.kind === "unreadable") return { dp: dpGate(undefined, limits, input.reason) };
	let metadata: TrainingMetadata;
	try {
		metadata = parseTrainingMetadata(input.bytes);
	} catch (e) {
		return { dp: dpGate(undefined, limits, toFtguardError(e).message) };
	}
	return { training: trainingRecord(metadata), dp: dpGate(metadata.dp, limits) };
}

/**
 * The EMF documents a recorded verdict emits about the training job (record state): whether its checkpoint was
 * signed (when the signature stage ran) and the ε its DP-SGD run spent (when the gate accounted one), by job id.
 */
export function trainingMetricDocuments(state: ScanState, now: Date): object[] {
	const jobId = state.training?.jobId ?? UNDECLARED_JOB_ID;
	const docs: object[] = [];
	const sig = state.signature;
	if (sig !== undefined) {
		const verified = sig.verified === true;
		docs.push(
			emfDocument(
				now,
				MetricName.TRAINING_JOB_CHECKPOINT_SIGNED_TOTAL,
				"Count",
				[TRAINING_DIMENSION.JOB_ID, TRAINING_DIMENSION.RESULT],
				{
					[TRAINING_DIMENSION.JOB_ID]: jobId,
					[TRAINING_DIMENSION.RESULT]: verified ? SignedResult.VERIFIED : SignedResult.UNVERIFIED,
					[MetricName.TRAINING_JOB_CHECKPOINT_SIGNED_TOTAL]: verified ? 1 : 0,
				},
			),
		);
	}
	const eps = state.dp?.epsilon;
	if (typeof eps === "number" && Number.isFinite(eps)) {
		docs.push(
			emfDocument(now, MetricName.DP_EPSILON_CONSUMED, "None", [TRAINING_DIMENSION.JOB_ID], {
				[TRAINING_DIMENSION.JOB_ID]: jobId,
				[MetricName.DP_EPSILON_CONSUMED]: eps,
			}),
		);
	}
	return docs;
}
