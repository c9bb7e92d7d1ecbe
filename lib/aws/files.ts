/**
 * The files state's S3 side: every object of the artefact (not the marker) through the format scanners via an
 * S3Source of its pinned version, the export binding (each ONNX export against the checkpoints beside it, read
 * from the same pinned versions), and the backdoor-scan plan (ONNX model, version, reference data from the policy,
 * or why no scan runs and the waiver that covers it) with the model facts it needs read from S3.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type { BindingReport } from "../core/backdoor/binding-artefact";
import { takesTokenIds } from "../core/backdoor/text-inputs";
import type { DpOutcome } from "../core/dp/gate";
import { FtguardError, toFtguardError } from "../core/errors";
import { defaultScanOptions } from "../core/formats";
import type { FileReport } from "../core/formats/scan";
import { resourceNameOf } from "../core/pipeline/artefact";
import { bindArtefact } from "../core/pipeline/binding";
import { mapLimit } from "../core/pipeline/concurrency";
import {
	backdoorPlan,
	type FilesOutcome,
	onnxModelsOf,
	type PlannedModel,
	scanSource,
	summariseFiles,
} from "../core/pipeline/files";
import { familyOf, MAX_CONFIG_BYTES, onnxInputs } from "../core/pipeline/model-info";
import { type TrainingMetadataInput, trainingChecks, trainingMetadataKey } from "../core/pipeline/training";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { type Policy, referenceDataFor } from "../core/policy";
import { MAX_TRAINING_METADATA_BYTES } from "../core/training/metadata";
import { readPinnedBytes } from "./objects";
import { S3Source } from "./s3-source";

export interface ScannedObject {
	key: string;
	versionId?: string | undefined;
	etag?: string | undefined;
	report: FileReport;
	/** bytes transferred from S3 for this object (the scanners read only what they need) */
	bytesFetched: number;
}

/** A directory's config.json: none, or one with the family it names (none when unreadable, too large, or silent). */
type ConfigFamily = { present: false } | { present: true; family: string | undefined };

/** The config.json at `dir` (a key prefix ending in "/"), if the artefact has one there, and its family. */
async function configFamilyAt(
	s3: S3Client,
	bucket: string,
	objects: readonly ScanObject[],
	dir: string,
): Promise<ConfigFamily> {
	const config = objects.find((o) => o.key === `${dir}config.json`);
	if (config === undefined) return { present: false };
	const family =
		config.size <= MAX_CONFIG_BYTES
			? familyOf(await readPinnedBytes(s3, { bucket, ...config }, MAX_CONFIG_BYTES))
			: undefined;
	return { present: true, family };
}

const familyOfConfig = (c: ConfigFamily) => (c.present ? c.family : undefined);
/** A config.json that is there but names no family ftguard can read: the DP gate applies every family's limits. */
const unreadable = (c: ConfigFamily) => c.present && c.family === undefined;

/**
 * Each ONNX model's facts for the plan: its family (the config.json beside it, else the artefact's top-level one),
 * input shape and whether it takes token ids, and the reference data the policy names for them.
 */
async function plannedModels(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact">,
	objects: readonly ScanObject[],
	keys: readonly string[],
	policy: Policy,
	artefactFamily: string | undefined,
): Promise<PlannedModel[]> {
	// one read of each directory's config.json, however many models sit beside it
	const families = new Map<string, Promise<ConfigFamily>>();
	return mapLimit(keys, 4, async (key): Promise<PlannedModel> => {
		const o = objects.find((x) => x.key === key);
		if (o === undefined) throw new FtguardError("NOT_FOUND", `${key} is not an object of the artefact`);
		const dir = key.slice(0, key.lastIndexOf("/") + 1);
		let own: ConfigFamily = { present: false };
		if (state.artefact.endsWith("/") && dir.startsWith(state.artefact) && dir !== state.artefact) {
			const read = families.get(dir) ?? configFamilyAt(s3, state.bucket, objects, dir);
			families.set(dir, read);
			own = await read;
		}
		const family = familyOfConfig(own) ?? artefactFamily;
		const inputs = await onnxInputs(new S3Source(s3, { bucket: state.bucket, ...o }, { blockSize: 64 * 1024 }));
		const inputShape = inputs?.shape;
		const info = { ...(family !== undefined ? { family } : {}), ...(inputShape !== undefined ? { inputShape } : {}) };
		return {
			key,
			versionId: o.versionId,
			...info,
			takesTokenIds: takesTokenIds(inputs?.names ?? []),
			reference: referenceDataFor(policy.referenceData, info),
			...(unreadable(own) ? { configUnreadable: true } : {}),
		};
	});
}

/** The artefact's ftguard-training.json (its pinned version), if it has one. */
async function trainingMetadataOf(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact">,
	objects: readonly ScanObject[],
): Promise<TrainingMetadataInput> {
	const key = trainingMetadataKey(state.artefact);
	const o = key !== undefined ? objects.find((x) => x.key === key) : undefined;
	if (o === undefined) return { kind: "absent" };
	try {
		return {
			kind: "read",
			bytes: await readPinnedBytes(s3, { bucket: state.bucket, ...o }, MAX_TRAINING_METADATA_BYTES),
		};
	} catch (e) {
		return { kind: "unreadable", reason: toFtguardError(e).message };
	}
}

export async function scanArtefact(
	s3: S3Client,
	state: ScanState & { objects: ScanObject[] },
	policy: Policy,
	now: Date = new Date(),
): Promise<{
	scanned: ScannedObject[];
	summary: FilesOutcome;
	backdoor: NonNullable<ScanState["backdoor"]>;
	binding?: BindingReport[];
	training?: NonNullable<ScanState["training"]>;
	dp: DpOutcome;
}> {
	const options = {
		...defaultScanOptions(),
		policy: { allowPickle: policy.files.allowPickle, inertNames: policy.files.inert },
		strict: policy.files.strict,
	};
	const content = state.objects.filter((o) => o.key !== state.marker.key);
	const scanned = await mapLimit(content, 4, async (o): Promise<ScannedObject> => {
		const source = new S3Source(s3, { bucket: state.bucket, ...o });
		const name = resourceNameOf(state.artefact, o.key);
		// a single-file artefact's resource is "."; scanners want a file name
		const report = await scanSource(
			source,
			`s3://${state.bucket}/${o.key}`,
			!name || name === "." ? o.key : name,
			options,
		);
		const { size: _, ...pin } = o;
		return { ...pin, report, bytesFetched: source.bytesFetched };
	});
	const artefactConfig: ConfigFamily = state.artefact.endsWith("/")
		? await configFamilyAt(s3, state.bucket, state.objects, state.artefact)
		: { present: false };
	const artefactFamily = familyOfConfig(artefactConfig);
	const models = await plannedModels(s3, state, content, onnxModelsOf(scanned), policy, artefactFamily);
	const summary = summariseFiles(scanned.map((s) => s.report));
	const binding = await bindArtefact(
		scanned.map((s) => ({ key: s.key, format: s.report.format })),
		async (key) => {
			const o = content.find((x) => x.key === key);
			if (o === undefined) throw new FtguardError("NOT_FOUND", `${key} is not an object of the artefact`);
			return new S3Source(s3, { bucket: state.bucket, ...o });
		},
	);
	const problems = binding?.reasons ?? [];
	const families = [artefactFamily, ...models.map((m) => m.family)].filter((f): f is string => f !== undefined);
	const unknownFamily = unreadable(artefactConfig) || models.some((m) => m.configUnreadable === true);
	const metadata = await trainingMetadataOf(s3, state, content);
	const { training, dp } = trainingChecks(metadata, families, policy.dp, unknownFamily);
	return {
		scanned,
		...(training ? { training } : {}),
		dp,
		...(binding ? { binding: binding.reports } : {}),
		summary: problems.length > 0 ? { ...summary, safe: false, reasons: [...summary.reasons, ...problems] } : summary,
		backdoor: backdoorPlan({
			artefact: state.artefact,
			files: scanned.map((s) => ({ key: s.key, format: s.report.format })),
			models,
			...(artefactFamily !== undefined ? { family: artefactFamily } : {}),
			versioned: state.marker.versionId !== undefined,
			policy: policy.backdoor,
			now,
		}),
	};
}
