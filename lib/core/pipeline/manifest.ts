/**
 * The manifest of an artefact in object storage: the same OMS "files" manifest
 * lib/core/integrity builds from a directory (resource names relative to the
 * model directory, "." for a single file, canonical order, root digest over the
 * raw digests), but from per-object digests computed by streaming the pinned
 * object versions. The written JSON also records which version of which key
 * each digest is of, so the verdict can be traced to exact bytes.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { canonicalOrder, rootDigestOfListed } from "../integrity/manifest";
import type { ResourceDescriptor, Serialization } from "../integrity/types";
import { zodMessage } from "../schema";

export const MANIFEST_SCHEMA = "https://ftguard.dev/schemas/pipeline-manifest/v1";

export interface ObjectDigest {
	/** resource name (relative to the artefact) */
	name: string;
	key: string;
	versionId?: string;
	etag?: string;
	size: number;
	/** lower-case hex SHA-256 */
	digest: string;
}

export interface PipelineManifest {
	schema: typeof MANIFEST_SCHEMA;
	scanId: string;
	bucket: string;
	artefact: string;
	modelName: string;
	serialization: Serialization;
	/** canonical OMS order */
	resources: ResourceDescriptor[];
	/** `sha256:<hex>`, the value of the ftguard:digest tag */
	rootDigest: string;
	bytes: number;
	objects: ObjectDigest[];
}

/** The subject name OMS would give the artefact: the directory's or file's base name. */
export function modelNameOf(artefact: string): string {
	const trimmed = artefact.endsWith("/") ? artefact.slice(0, -1) : artefact;
	return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

export function buildPipelineManifest(
	scan: { scanId: string; bucket: string; artefact: string },
	objects: readonly ObjectDigest[],
): PipelineManifest {
	const names = new Set<string>();
	for (const o of objects) {
		if (names.has(o.name)) throw new FtguardError("INTERNAL", `duplicate resource ${JSON.stringify(o.name)}`);
		names.add(o.name);
		if (!/^[0-9a-f]{64}$/.test(o.digest)) throw new FtguardError("INTERNAL", `bad digest for ${o.key}`);
	}
	const resources = canonicalOrder(
		objects.map((o) => ({ name: o.name, algorithm: "sha256" as const, digest: o.digest })),
		"files",
	);
	return {
		schema: MANIFEST_SCHEMA,
		scanId: scan.scanId,
		bucket: scan.bucket,
		artefact: scan.artefact,
		modelName: modelNameOf(scan.artefact),
		serialization: { method: "files", hash_type: "sha256", allow_symlinks: false, ignore_paths: [] },
		resources,
		rootDigest: `sha256:${rootDigestOfListed(resources)}`,
		bytes: objects.reduce((n, o) => n + o.size, 0),
		objects: [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
	};
}

const manifestJsonSchema = z
	.object({
		schema: z.literal(MANIFEST_SCHEMA),
		rootDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
		resources: z.array(
			z.object({ name: z.string().min(1), algorithm: z.literal("sha256"), digest: z.string().regex(/^[0-9a-f]{64}$/) }),
		),
	})
	.loose();

/**
 * Reads back a manifest the manifest state wrote, and checks it is the one the
 * state names (same root digest) and that its root really is its resources' digest.
 */
export function parseManifestJson(
	bytes: Uint8Array,
	expected: { rootDigest: string },
): { resources: ResourceDescriptor[]; rootDigest: string } {
	let json: unknown;
	try {
		json = JSON.parse(Buffer.from(bytes).toString("utf8"));
	} catch (e) {
		throw new FtguardError("DATA_INVALID", "the manifest is not JSON", { cause: e });
	}
	const r = manifestJsonSchema.safeParse(json);
	if (!r.success) throw new FtguardError("DATA_INVALID", `the manifest is malformed: ${zodMessage(r.error)}`);
	const resources = canonicalOrder(r.data.resources, "files");
	if (r.data.rootDigest !== expected.rootDigest || `sha256:${rootDigestOfListed(resources)}` !== r.data.rootDigest) {
		throw new FtguardError("DATA_INVALID", "the manifest's root digest is not the one the manifest state computed");
	}
	return { resources, rootDigest: r.data.rootDigest };
}
