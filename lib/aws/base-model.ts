/**
 * The base-model gate's S3 side (lambdas/base-model.ts; rules in lib/core/pipeline/base-model.ts): the model's
 * signed registry read and verified over the bytes read, every object hashed (the manifest's streaming digests) and
 * scanned (the files state's ranged reads). Pinning and tagging are the input gates' (lib/aws/input-gate.ts).
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { defaultScanOptions } from "../core/formats";
import { type Registry, verifyRegistry } from "../core/integrity/registry";
import {
	type BaseModelGateResult,
	judgeGate,
	MAX_MARKER_BYTES,
	type NamedReport,
	parseBaseModelMarker,
} from "../core/pipeline/base-model";
import { mapLimit } from "../core/pipeline/concurrency";
import { scanSource } from "../core/pipeline/files";
import type { GateTarget } from "../core/pipeline/input-gate";
import { contentObjects } from "../core/pipeline/manifest";
import type { ScanObject } from "../core/pipeline/types";
import { type Policy, trustPoliciesOf } from "../core/policy";
import { readMarker } from "./input-gate";
import { digestObjects } from "./manifest";
import { getObjectBytes, parseS3Uri } from "./object-store";
import type { RangedReadOptions } from "./objects";
import { S3Source } from "./s3-source";

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

/** The registry id the pinned marker names. */
export async function markerId(s3: S3Client, target: GateTarget, objects: readonly ScanObject[]): Promise<string> {
	const bytes = await readMarker(s3, target, objects, MAX_MARKER_BYTES);
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
