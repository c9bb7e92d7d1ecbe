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
import { parseBundle } from "../integrity/bundle";
import { canonicalOrder, hashOptionsFromSerialization, rootDigestOfListed, shardRanges } from "../integrity/manifest";
import { parseModelSigningStatement } from "../integrity/statement";
import type { ResourceDescriptor, Serialization } from "../integrity/types";
import { zodMessage } from "../schema";
import { resourceNameOf } from "./artefact";
import type { ScanObject, ScanState } from "./types";

export const MANIFEST_SCHEMA = "https://ftguard.dev/schemas/pipeline-manifest/v1";

export interface ObjectDigest {
	/** resource name: relative to the artefact ("." for a single file), plus `:start:end` for a shard */
	name: string;
	key: string;
	versionId?: string | undefined;
	etag?: string | undefined;
	size: number;
	/** the bytes `[start, end)` of the object this digest covers (method "shards") */
	range?: [number, number];
	/** lower-case hex SHA-256 */
	digest: string;
}

/**
 * How the artefact is hashed: the way its signature was made, so that the per-resource comparison can match.
 * Taken from the marker's signed statement before the signature is verified — it only chooses how to hash; the
 * signature state verifies the statement and refuses a manifest hashed any other way than it says.
 */
export type HashPlan = { method: "files" } | { method: "shards"; shardSize: number; shardEmptyFiles: boolean };

export const FILES_PLAN: HashPlan = { method: "files" };

/**
 * The hash plan a marker's bundle asks for: "shards" with its shard size (and empty-file rule) when its
 * statement says so, else "files" — also when the bundle cannot be read: the signature state then reports why.
 */
export function hashPlanOf(bundle: Uint8Array | undefined): HashPlan {
	if (bundle === undefined) return FILES_PLAN;
	try {
		const parsed = parseBundle(bundle, "marker");
		if (parsed.content.$case !== "dsseEnvelope") return FILES_PLAN;
		const statement = parseModelSigningStatement(parsed.content.dsseEnvelope.payload);
		const o = hashOptionsFromSerialization(statement.serialization, statement.resources);
		if (o.method !== "shards") return FILES_PLAN;
		return { method: "shards", shardSize: o.shardSize as number, shardEmptyFiles: o.shardEmptyFiles === true };
	} catch {
		return FILES_PLAN;
	}
}

/** Shard resources per artefact (method "shards"): each costs a ranged GET and a manifest entry. */
export const MAX_SHARDS = 100_000;

/** An object of the artefact with its manifest resource name. */
export type NamedObject = ScanObject & { name: string };

/** The artefact's content — every pinned object but the marker — each with its resource name. */
export function contentObjects(
	state: Pick<ScanState, "artefact" | "marker"> & { objects: readonly ScanObject[] },
): NamedObject[] {
	return state.objects
		.filter((o) => o.key !== state.marker.key)
		.map((o) => {
			const name = resourceNameOf(state.artefact, o.key);
			if (name === undefined) throw new FtguardError("USAGE", `${o.key} is not part of ${state.artefact}`);
			return { ...o, name };
		});
}

/**
 * Each object's `[start, end)` shards under a "shards" plan, as OMS cuts them. The shard size comes from the (not
 * yet verified) marker: a tiny one must not turn into millions of GETs, so more than {@link MAX_SHARDS} is
 * TOO_MANY_FILES.
 */
export function shardsOf(
	objects: readonly NamedObject[],
	plan: Extract<HashPlan, { method: "shards" }>,
	artefact: string,
): Array<{ o: NamedObject; start: number; end: number }> {
	const count = objects.reduce((n, o) => n + Math.max(1, Math.ceil(o.size / plan.shardSize)), 0);
	if (count > MAX_SHARDS) {
		throw new FtguardError(
			"TOO_MANY_FILES",
			`shards of ${plan.shardSize} bytes cut ${artefact} into ${count} pieces (limit ${MAX_SHARDS})`,
		);
	}
	return objects.flatMap((o) =>
		shardRanges(o.size, plan.shardSize, plan.shardEmptyFiles).map(([start, end]) => ({ o, start, end })),
	);
}

function serializationOf(plan: HashPlan): Serialization {
	const base = { hash_type: "sha256" as const, allow_symlinks: false, ignore_paths: [] as string[] };
	return plan.method === "shards"
		? { method: "shards", ...base, shard_size: plan.shardSize }
		: { method: "files", ...base };
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
	plan: HashPlan = FILES_PLAN,
): PipelineManifest {
	const names = new Set<string>();
	for (const o of objects) {
		if (names.has(o.name)) throw new FtguardError("INTERNAL", `duplicate resource ${JSON.stringify(o.name)}`);
		names.add(o.name);
		if (!/^[0-9a-f]{64}$/.test(o.digest)) throw new FtguardError("INTERNAL", `bad digest for ${o.key}`);
	}
	const resources = canonicalOrder(
		objects.map((o) => ({ name: o.name, algorithm: "sha256" as const, digest: o.digest })),
		plan.method,
	);
	// an object's bytes once, whether it is one resource or several shards
	const sizes = new Map(objects.map((o) => [o.key, o.size]));
	return {
		schema: MANIFEST_SCHEMA,
		scanId: scan.scanId,
		bucket: scan.bucket,
		artefact: scan.artefact,
		modelName: modelNameOf(scan.artefact),
		serialization: serializationOf(plan),
		resources,
		rootDigest: `sha256:${rootDigestOfListed(resources)}`,
		bytes: [...sizes.values()].reduce((n, size) => n + size, 0),
		objects: [...objects].sort(
			(a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || (a.range?.[0] ?? 0) - (b.range?.[0] ?? 0),
		),
	};
}

const manifestJsonSchema = z
	.object({
		schema: z.literal(MANIFEST_SCHEMA),
		serialization: z
			.object({ method: z.enum(["files", "shards"]), shard_size: z.number().int().positive().optional() })
			.loose()
			.optional(),
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
): {
	resources: ResourceDescriptor[];
	rootDigest: string;
	serialization: Pick<Serialization, "method" | "shard_size">;
} {
	let json: unknown;
	try {
		json = JSON.parse(Buffer.from(bytes).toString("utf8"));
	} catch (e) {
		throw new FtguardError("DATA_INVALID", "the manifest is not JSON", { cause: e });
	}
	const r = manifestJsonSchema.safeParse(json);
	if (!r.success) throw new FtguardError("DATA_INVALID", `the manifest is malformed: ${zodMessage(r.error)}`);
	const method = r.data.serialization?.method ?? "files";
	const shardSize = r.data.serialization?.shard_size;
	if (method === "shards" && shardSize === undefined) {
		throw new FtguardError("DATA_INVALID", "the manifest is malformed: shards without a shard_size");
	}
	const resources = canonicalOrder(r.data.resources, method);
	if (r.data.rootDigest !== expected.rootDigest || `sha256:${rootDigestOfListed(resources)}` !== r.data.rootDigest) {
		throw new FtguardError("DATA_INVALID", "the manifest's root digest is not the one the manifest state computed");
	}
	return {
		resources,
		rootDigest: r.data.rootDigest,
		serialization: method === "shards" ? { method, shard_size: shardSize as number } : { method },
	};
}
