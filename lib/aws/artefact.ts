/**
 * The objects of an artefact, each pinned to its version now: what the mark
 * state tags SCANNING and every later state reads. The marker is pinned to the
 * version whose upload started the scan; if it has been replaced since, this
 * scan is stale (the newer upload starts its own) and fails.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { shardRanges } from "../core/integrity/manifest";
import { MAX_BUNDLE_BYTES } from "../core/integrity/sigstore";
import type { ResourceDescriptor, Serialization } from "../core/integrity/types";
import { normalizeEtag, resourceNameOf } from "../core/pipeline/artefact";
import { mapLimit } from "../core/pipeline/concurrency";
import { FILES_PLAN, type HashPlan, type ObjectDigest, parseManifestJson } from "../core/pipeline/manifest";
import { familyOf, onnxInputShape } from "../core/pipeline/model-info";
import type { ScanObject, ScanState, ScanStateWith } from "../core/pipeline/types";
import { getObjectBytes, parseS3Uri } from "./object-store";
import {
	headObject,
	listKeys,
	type ObjectHead,
	type RangedReadOptions,
	readPinnedBytes,
	sha256Pinned,
	sha256PinnedRange,
} from "./objects";
import { S3Source } from "./s3-source";

/** More objects than any checkpoint has; each costs a HEAD and a tag write. */
export const MAX_OBJECTS = 10_000;
/** Shard resources per artefact (method "shards"): each costs a ranged GET and a manifest entry. */
export const MAX_SHARDS = 100_000;

function pinned(key: string, h: ObjectHead): ScanObject {
	return {
		key,
		...(h.versionId !== undefined ? { versionId: h.versionId } : {}),
		...(h.etag !== undefined ? { etag: h.etag } : {}),
		size: h.size,
	};
}

export async function listArtefactObjects(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact" | "marker">,
): Promise<ScanObject[]> {
	const { bucket, artefact, marker } = state;
	const keys = artefact.endsWith("/")
		? (await listKeys(s3, bucket, artefact, MAX_OBJECTS)).filter((k) => !k.endsWith("/"))
		: [artefact, marker.key];
	if (!keys.includes(marker.key)) keys.push(marker.key);
	const objects = await mapLimit(keys, 8, async (key): Promise<ScanObject | undefined> => {
		const isMarker = key === marker.key;
		const h = await headObject(s3, bucket, key, isMarker ? marker.versionId : undefined);
		if (h === undefined) {
			if (isMarker) throw new FtguardError("NOT_FOUND", `the marker s3://${bucket}/${key} no longer exists`);
			return undefined; // deleted between the listing and now: not part of the artefact any more
		}
		if (
			isMarker &&
			marker.etag !== undefined &&
			h.etag !== undefined &&
			normalizeEtag(h.etag) !== normalizeEtag(marker.etag)
		) {
			throw new FtguardError("IO_ERROR", `the marker s3://${bucket}/${key} was replaced after its upload event`);
		}
		return pinned(key, h);
	});
	return objects
		.filter((o): o is ScanObject => o !== undefined)
		.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Family (from the artefact's top-level config.json) for reference data and waivers, and input shape (from the
 * ONNX model, when there is one) for reference data.
 */
export async function modelInfoOf(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact">,
	objects: readonly ScanObject[],
	model: ScanObject | undefined,
): Promise<{ family?: string; inputShape?: string }> {
	const config = state.artefact.endsWith("/")
		? objects.find((o) => o.key === `${state.artefact}config.json`)
		: undefined;
	const family =
		config && config.size <= MAX_CONFIG_BYTES
			? familyOf(await readPinnedBytes(s3, { bucket: state.bucket, ...config }, MAX_CONFIG_BYTES))
			: undefined;
	const inputShape = model
		? await onnxInputShape(new S3Source(s3, { bucket: state.bucket, ...model }, { blockSize: 64 * 1024 }))
		: undefined;
	return { ...(family !== undefined ? { family } : {}), ...(inputShape !== undefined ? { inputShape } : {}) };
}

const MAX_CONFIG_BYTES = 1 << 20;

/**
 * SHA-256 of every object of the artefact but the marker, each streamed from its pinned version: one digest per
 * object (method "files"), or one per shard of `plan.shardSize` bytes (method "shards", as the signature was made).
 */
export async function digestObjects(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "artefact" | "marker"> & { objects: ScanObject[] },
	plan: HashPlan = FILES_PLAN,
	read: RangedReadOptions = {},
): Promise<ObjectDigest[]> {
	const content = state.objects.filter((o) => o.key !== state.marker.key);
	const named = content.map((o) => {
		const name = resourceNameOf(state.artefact, o.key);
		if (name === undefined) throw new FtguardError("USAGE", `${o.key} is not part of ${state.artefact}`);
		return { ...o, name };
	});
	if (plan.method === "files") {
		return mapLimit(named, 4, async (o) => {
			const { digest } = await sha256Pinned(s3, { bucket: state.bucket, ...o }, read);
			return { ...o, digest };
		});
	}
	// the shard size comes from the (not yet verified) marker: a tiny one must not turn into millions of GETs
	const count = named.reduce((n, o) => n + Math.max(1, Math.ceil(o.size / plan.shardSize)), 0);
	if (count > MAX_SHARDS) {
		throw new FtguardError(
			"TOO_MANY_FILES",
			`shards of ${plan.shardSize} bytes cut ${state.artefact} into ${count} pieces (limit ${MAX_SHARDS})`,
		);
	}
	const shards = named.flatMap((o) =>
		shardRanges(o.size, plan.shardSize, plan.shardEmptyFiles).map(([start, end]) => ({ o, start, end })),
	);
	return mapLimit(shards, 4, async ({ o, start, end }) => ({
		...o,
		name: `${o.name}:${start}:${end}`,
		range: [start, end] as [number, number],
		digest: await sha256PinnedRange(s3, { bucket: state.bucket, ...o }, { start, end }, read),
	}));
}

/** The marker's bytes (its pinned version), or undefined when it is not among the marked objects. */
export async function markerBytes(
	s3: S3Client,
	state: Pick<ScanState, "bucket" | "marker"> & { objects: ScanObject[] },
): Promise<Uint8Array | undefined> {
	const marker = state.objects.find((o) => o.key === state.marker.key);
	return marker ? readPinnedBytes(s3, { bucket: state.bucket, ...marker }, MAX_BUNDLE_BYTES) : undefined;
}

/** The signature state's inputs: the marker bundle (its pinned version) and the manifest the manifest state wrote. */
export async function signatureInputs(
	s3: S3Client,
	state: ScanStateWith<"objects" | "manifest">,
): Promise<{
	bundle: Uint8Array | undefined;
	manifest: {
		resources: ResourceDescriptor[];
		rootDigest: string;
		serialization: Pick<Serialization, "method" | "shard_size">;
	};
}> {
	const { bytes } = await getObjectBytes(s3, parseS3Uri(state.manifest.uri), MAX_MANIFEST_BYTES);
	const manifest = parseManifestJson(bytes, state.manifest);
	return { bundle: await markerBytes(s3, state), manifest };
}

const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
