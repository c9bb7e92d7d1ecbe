/**
 * The base-model gate's S3 side (lambdas/base-model.ts; rules in lib/core/pipeline/base-model.ts): the model's
 * objects pinned to their versions (mark's listing), the signed registry read and verified over the bytes read,
 * every object hashed (the manifest's streaming digests) and scanned (the files state's ranged reads), and every
 * pinned version tagged with the verdict — except a version replaced during the check, which gets no tag (an
 * untagged object is unreadable to training jobs) and quarantines the rest.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { defaultScanOptions } from "../core/formats";
import { type Registry, verifyRegistry } from "../core/integrity/registry";
import {
	type BaseModelGateResult,
	gateTags,
	judgeGate,
	MAX_MARKER_BYTES,
	type NamedReport,
	parseBaseModelMarker,
} from "../core/pipeline/base-model";
import { mapLimit } from "../core/pipeline/concurrency";
import { scanSource } from "../core/pipeline/files";
import { contentObjects } from "../core/pipeline/manifest";
import { ScanStatus } from "../core/pipeline/names";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { type Policy, trustPoliciesOf } from "../core/policy";
import { digestObjects } from "./manifest";
import { listArtefactObjects } from "./mark";
import { getObjectBytes, parseS3Uri } from "./object-store";
import { changedSince, type RangedReadOptions, readPinnedBytes } from "./objects";
import { S3Source } from "./s3-source";
import { putFtguardTags } from "./tagging";

/** The model being checked: its directory, the marker version that started the check, and the check id. */
export type GateTarget = Pick<ScanState, "bucket" | "artefact" | "marker"> & { checkId: string };

const MAX_REGISTRY_BYTES = 16 << 20;

/** The policy's signed registry, verified under its signers. A policy without one cannot gate (USAGE). */
export async function loadRegistry(s3: S3Client, policy: Policy): Promise<Registry> {
	const where = policy.baseModelRegistry;
	if (!where) throw new FtguardError("USAGE", "the policy names no baseModelRegistry: no base model can be checked");
	const [registry, bundle] = await Promise.all([
		getObjectBytes(s3, parseS3Uri(where.uri), MAX_REGISTRY_BYTES),
		getObjectBytes(s3, parseS3Uri(where.bundleUri), MAX_REGISTRY_BYTES),
	]);
	return (
		await verifyRegistry(
			Buffer.from(registry.bytes),
			Buffer.from(bundle.bytes),
			where.uri,
			where.bundleUri,
			trustPoliciesOf(where.signers),
		)
	).registry;
}

/** Every object of the model, pinned now (the marker to the version whose upload started the check). */
export function pinModel(s3: S3Client, target: GateTarget): Promise<ScanObject[]> {
	return listArtefactObjects(s3, target);
}

/** The registry id the pinned marker names. */
export async function markerId(s3: S3Client, target: GateTarget, objects: readonly ScanObject[]): Promise<string> {
	const marker = objects.find((o) => o.key === target.marker.key);
	if (!marker) throw new FtguardError("NOT_FOUND", `the marker s3://${target.bucket}/${target.marker.key} is gone`);
	const bytes = await readPinnedBytes(s3, { bucket: target.bucket, ...marker }, MAX_MARKER_BYTES);
	return parseBaseModelMarker(bytes, `s3://${target.bucket}/${target.marker.key}`);
}

/** Digests and file-safety scans of every pinned object but the marker, then the verdict. */
export async function checkModel(
	s3: S3Client,
	target: GateTarget,
	objects: ScanObject[],
	id: string,
	registry: Registry,
	policy: Policy,
	read: RangedReadOptions = {},
): Promise<BaseModelGateResult> {
	const state = { ...target, objects };
	const digests = await digestObjects(s3, state, undefined, read);
	const options = {
		...defaultScanOptions(),
		// Pickles are always found (and judged by the registry rule), whatever the policy allows for checkpoints.
		policy: { allowPickle: false, inertNames: policy.files.inert },
		strict: policy.files.strict,
	};
	const reports = await mapLimit(
		contentObjects(state),
		4,
		async (o): Promise<NamedReport> => ({
			name: o.name,
			report: await scanSource(
				new S3Source(s3, { bucket: target.bucket, ...o }),
				`s3://${target.bucket}/${o.key}`,
				o.name,
				options,
			),
		}),
	);
	return judgeGate(registry, id, new Map(digests.map((d) => [d.name, d.digest])), reports);
}

export interface TagOutcome {
	/** keys whose version changed during the check: left untagged */
	changed: string[];
	/** the status written on the others */
	status: BaseModelGateResult["status"];
}

/**
 * Tags every pinned version with the verdict. A key whose current version is no longer the pinned one gets no
 * tag, and then no object gets PROMOTABLE (the model that passed is not the one in the bucket).
 */
export async function tagModel(
	s3: S3Client,
	target: GateTarget,
	objects: readonly ScanObject[],
	status: BaseModelGateResult["status"],
): Promise<TagOutcome> {
	const changed = (
		await mapLimit(objects, 8, async (o) => ((await changedSince(s3, target.bucket, o)) ? o.key : undefined))
	).filter((k): k is string => k !== undefined);
	const final = changed.length > 0 ? ScanStatus.QUARANTINED : status;
	const unchanged = objects.filter((o) => !changed.includes(o.key));
	const written = await mapLimit(unchanged, 8, (o) =>
		putFtguardTags(s3, { bucket: target.bucket, ...o }, gateTags(final, target.checkId)),
	);
	// a version bound by ETag that was overwritten between the check above and its tag write is refused the tag
	unchanged.forEach((o, i) => {
		if (!written[i]) changed.push(o.key);
	});
	if (final === ScanStatus.PROMOTABLE && unchanged.some((_, i) => !written[i])) {
		await mapLimit(
			unchanged.filter((_, i) => written[i]),
			8,
			(o) => putFtguardTags(s3, { bucket: target.bucket, ...o }, gateTags(ScanStatus.QUARANTINED, target.checkId)),
		);
		return { changed, status: ScanStatus.QUARANTINED };
	}
	return { changed, status: final };
}

/** Fail closed: QUARANTINED on whatever can be tagged — the pinned versions, else the marker version — errors ignored. */
export async function quarantineWhatever(
	s3: S3Client,
	target: GateTarget,
	objects: readonly ScanObject[] | undefined,
): Promise<number> {
	const targets: ScanObject[] = objects?.length
		? [...objects]
		: [{ key: target.marker.key, ...versionOf(target), size: 0 }];
	const done = await mapLimit(targets, 8, async (o) => {
		try {
			return await putFtguardTags(
				s3,
				{ bucket: target.bucket, ...o },
				gateTags(ScanStatus.QUARANTINED, target.checkId),
			);
		} catch {
			return false;
		}
	});
	return done.filter(Boolean).length;
}

function versionOf(target: GateTarget): Pick<ScanObject, "versionId" | "etag"> {
	return {
		...(target.marker.versionId !== undefined ? { versionId: target.marker.versionId } : {}),
		...(target.marker.etag !== undefined ? { etag: target.marker.etag } : {}),
	};
}
