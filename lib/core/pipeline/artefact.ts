/**
 * Which uploads start a scan, and of what. The commit marker is the signature,
 * because an uploader writes it last:
 *
 * - `<dir>/model.sig` (an OMS bundle): the artefact is the key prefix `<dir>/`,
 *   every object under it; the marker itself is not a resource of the manifest.
 * - `<key>.sigstore.json`: the artefact is the single object `<key>` (for
 *   example `adapter.safetensors`, `model.onnx`, `model.gguf`); its one resource
 *   is named "." as in OMS single-file manifests.
 *
 * A bare artefact without a signature starts nothing: it stays untagged, and an
 * untagged object is unreadable to consumers (fail closed). The EventBridge
 * rule matches the same two suffixes (MARKER_SUFFIXES in ./names.ts).
 */
import { createHash } from "node:crypto";
import { BUNDLE_SUFFIX, MODEL_SIG } from "./names";

export interface ResolvedMarker {
	kind: "directory" | "file";
	/** A prefix ending in "/" (directory) or the artefact's key (file). */
	artefact: string;
}

/** The artefact a marker key commits, or undefined when the key is not a commit marker. */
export function resolveMarker(key: string): ResolvedMarker | undefined {
	if (key.endsWith(`/${MODEL_SIG}`)) {
		const prefix = key.slice(0, key.length - MODEL_SIG.length);
		// "/model.sig" alone would scan the bucket root: never a checkpoint directory.
		return prefix.length > 1 ? { kind: "directory", artefact: prefix } : undefined;
	}
	if (key.endsWith(BUNDLE_SUFFIX)) {
		const target = key.slice(0, key.length - BUNDLE_SUFFIX.length);
		const base = target.slice(target.lastIndexOf("/") + 1);
		// "x/.sigstore.json" names no file; "x.sigstore.json.sigstore.json" signs a bundle, not a model.
		if (base === "" || target.endsWith(BUNDLE_SUFFIX) || target.endsWith(`/${MODEL_SIG}`)) return undefined;
		return { kind: "file", artefact: target };
	}
	return undefined;
}

/** An ETag without its quotes, so `"abc"` and `abc` bind the same. */
export function normalizeEtag(etag: string): string {
	return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * Deterministic scan id of (bucket, marker key, marker version): the Step
 * Functions execution name, so a duplicated event starts nothing. 68 characters
 * of [a-z0-9-], within the 80 an execution name allows.
 *
 * The version is the VersionId where the store has one (every new PUT gets a new
 * one). Without versioning (the local server) the ETag alone would make a
 * re-upload of the same marker bytes — after the weights beside it changed —
 * look like a duplicate and start nothing; the event's `sequencer` (the same in a
 * redelivered event, new for each PUT) tells a re-upload from a redelivery.
 */
export function scanIdOf(
	bucket: string,
	key: string,
	version: { versionId?: string; etag?: string; sequencer?: string },
): string {
	const v =
		version.versionId !== undefined
			? `v:${version.versionId}`
			: `e:${normalizeEtag(version.etag ?? "")}${version.sequencer !== undefined ? `:s:${version.sequencer}` : ""}`;
	const h = createHash("sha256")
		.update(JSON.stringify([bucket, key, v]))
		.digest("hex");
	return `ftg-${h}`;
}

/** The manifest name of an object of the artefact: relative to the directory, or "." for a single file. */
export function resourceNameOf(artefact: string, key: string): string | undefined {
	if (!artefact.endsWith("/")) return key === artefact ? "." : undefined;
	if (!key.startsWith(artefact) || key.length === artefact.length) return undefined;
	return key.slice(artefact.length);
}
