/**
 * The root digest of an artefact in a bucket as it is now (`ftguard provenance verify --artefact s3://…`): the
 * current version of every object under the prefix (or the one key), the marker left out, hashed by the manifest
 * step's own code (lib/aws/manifest.ts, lib/core/pipeline/manifest.ts) — so the digest is the pipeline's by
 * construction. Each object is pinned to the version its HEAD returned, so an overwrite mid-hash fails the read
 * instead of mixing two versions.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { mapLimit } from "../core/pipeline/concurrency";
import { buildPipelineManifest, type HashPlan } from "../core/pipeline/manifest";
import { BUNDLE_SUFFIX, MODEL_SIG } from "../core/pipeline/names";
import type { ScanObject } from "../core/pipeline/types";
import type { ArtefactRoot } from "../core/provenance/artefact";
import { digestObjects } from "./manifest";
import { parseS3Uri } from "./object-store";
import { headObject, listObjects } from "./objects";
import { newS3Client } from "./runtime";

/** More objects than one manifest holds (the local walk's limit). */
const MAX_OBJECTS = 100_000;

/**
 * @param uri `s3://bucket/prefix/` (a model directory) or `s3://bucket/key` (a single-file artefact)
 * @param directory whether the record describes a directory: a prefix given without its trailing "/" gets one
 * @throws FtguardError NOT_FOUND (nothing there), IO_ERROR (an object changed while read, access denied), TOO_MANY_FILES
 */
export async function artefactRootInS3(
	s3: S3Client,
	uri: string,
	plan: HashPlan,
	directory: boolean,
): Promise<ArtefactRoot> {
	const { bucket, key } = parseS3Uri(uri);
	const artefact = directory && !key.endsWith("/") ? `${key}/` : key;
	const isDirectory = artefact.endsWith("/");
	const marker = isDirectory ? `${artefact}${MODEL_SIG}` : `${artefact}${BUNDLE_SUFFIX}`;
	const keys = isDirectory ? (await listObjects(s3, bucket, artefact, MAX_OBJECTS)).map((o) => o.key) : [artefact];
	const heads = await mapLimit(keys, 8, async (k) => ({ key: k, head: await headObject(s3, bucket, k) }));
	const objects: ScanObject[] = heads.flatMap(({ key: k, head }) =>
		head === undefined
			? []
			: [
					{
						key: k,
						size: head.size,
						...(head.versionId !== undefined ? { versionId: head.versionId } : {}),
						...(head.etag !== undefined ? { etag: head.etag } : {}),
					},
				],
	);
	const content = objects.filter((o) => o.key !== marker);
	if (content.length === 0) throw new FtguardError("NOT_FOUND", `${uri}: no objects`);
	const how = plan;
	const digests = await digestObjects(s3, { bucket, artefact, marker: { key: marker }, objects }, how);
	const manifest = buildPipelineManifest({ scanId: "provenance-verify", bucket, artefact }, digests, how);
	return {
		kind: isDirectory ? "directory" : "file",
		root: manifest.rootDigest.slice("sha256:".length),
		files: content.length,
		bytes: manifest.bytes,
		plan: how,
		names: isDirectory ? content.map((o) => o.key.slice(artefact.length)).sort() : ["."],
	};
}

/**
 * {@link artefactRootInS3} with a client of the environment's credentials and region (the handlers' own factory,
 * lib/aws/runtime.ts). Made here, where the SDK is a static import: a dynamic import of the CommonJS SDK from a
 * bundled chunk gives no named exports.
 */
export async function artefactRootAtUri(uri: string, plan: HashPlan, directory: boolean): Promise<ArtefactRoot> {
	const s3 = newS3Client();
	try {
		return await artefactRootInS3(s3, uri, plan, directory);
	} finally {
		s3.destroy();
	}
}
