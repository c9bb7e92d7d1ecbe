/**
 * The mark state's rules: which objects make up the artefact, when the marker shows that the scan is stale, and
 * the tags that say a scan holds an object. The S3 side (listing, HEADs, tag writes) is lib/aws/mark.ts.
 */
import { normalizeEtag } from "./artefact";
import { SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "./names";
import type { ScanObject, ScanState } from "./types";

/** More objects than any checkpoint has; each costs a HEAD and a tag write. */
export const MAX_OBJECTS = 10_000;

/**
 * The keys mark pins: every key listed under a directory artefact's prefix (not the "folder" placeholders that end
 * in "/"), or a single-file artefact's one key (`listed` is then not used); the marker in either case.
 */
export function keysToMark(state: Pick<ScanState, "artefact" | "marker">, listed: readonly string[]): string[] {
	const keys = state.artefact.endsWith("/")
		? listed.filter((k) => !k.endsWith("/"))
		: [state.artefact, state.marker.key];
	if (!keys.includes(state.marker.key)) keys.push(state.marker.key);
	return keys;
}

/**
 * Whether the marker's current ETag shows an upload after the one whose event started this scan: the scan is then
 * stale (the newer upload starts its own). Without an ETag on either side nothing can be told.
 */
export function markerReplaced(marker: ScanState["marker"], currentEtag: string | undefined): boolean {
	return (
		marker.etag !== undefined && currentEtag !== undefined && normalizeEtag(currentEtag) !== normalizeEtag(marker.etag)
	);
}

/** The tags mark writes on every pinned version: SCANNING (unreadable), with the scan id record and the sweeper match. */
export function scanningTags(scanId: string): Record<string, string> {
	return { [STATUS_TAG]: ScanStatus.SCANNING, [SCAN_ID_TAG]: scanId };
}

/** The pinned objects in key order: the order mark returns them in, whatever order their HEADs completed in. */
export function inKeyOrder(objects: readonly ScanObject[]): ScanObject[] {
	return [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
