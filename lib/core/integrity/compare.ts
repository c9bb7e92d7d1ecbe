/**
 * Compares a signed list of resources with the resources actually found on disk
 * and says, per file, what differs. Shards are grouped back into their file: a
 * file that grew by one byte has different shard names, and "digest mismatch in
 * weights.bin" is what a reviewer needs to read, not "3 missing, 3 unsigned shards".
 */
import { type FindingCode, FtguardError } from "../errors";
import type { ResourceDescriptor, SerializationMethod } from "./types";

export interface DigestMismatch {
	name: string;
	expected: string;
	actual: string;
}

export interface ManifestDiff {
	/** On disk, not covered by the signature. */
	unsigned: string[];
	/** Covered by the signature, not on disk. */
	missing: string[];
	/** On both sides with different content. */
	mismatched: DigestMismatch[];
}

/** The file a resource belongs to: `path:start:end` → `path` for shards. */
export function resourceFile(name: string, method: SerializationMethod): string {
	if (method !== "shards") return name;
	const m = /^(.*):(\d+):(\d+)$/.exec(name);
	return m?.[1] ?? name;
}

function byFile(resources: ResourceDescriptor[], method: SerializationMethod): Map<string, string> {
	// Per file, the ordered list of "name=digest" pairs: equal iff every shard matches.
	const files = new Map<string, string[]>();
	for (const r of resources) {
		const file = resourceFile(r.name, method);
		const list = files.get(file) ?? [];
		list.push(`${r.name}=${r.digest}`);
		files.set(file, list);
	}
	return new Map([...files].map(([k, v]) => [k, v.sort().join("\n")]));
}

export function diffResources(
	expected: ResourceDescriptor[],
	actual: ResourceDescriptor[],
	method: SerializationMethod,
): ManifestDiff {
	const want = byFile(expected, method);
	const have = byFile(actual, method);
	const diff: ManifestDiff = { unsigned: [], missing: [], mismatched: [] };
	for (const [file, digests] of have) {
		const expectedDigests = want.get(file);
		if (expectedDigests === undefined) diff.unsigned.push(file);
		else if (expectedDigests !== digests) {
			diff.mismatched.push({ name: file, expected: summarise(expectedDigests), actual: summarise(digests) });
		}
	}
	for (const file of want.keys()) if (!have.has(file)) diff.missing.push(file);
	diff.unsigned.sort();
	diff.missing.sort();
	diff.mismatched.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
	return diff;
}

/** One digest for a file (its only digest, or the shard count for sharded files). */
function summarise(joined: string): string {
	const parts = joined.split("\n");
	if (parts.length === 1) return parts[0]?.split("=")[1] ?? "";
	return `${parts.length} shards`;
}

export function isEmptyDiff(d: ManifestDiff): boolean {
	return d.unsigned.length === 0 && d.missing.length === 0 && d.mismatched.length === 0;
}

const MAX_NAMED = 5;

function names(list: string[]): string {
	const shown = list.slice(0, MAX_NAMED).join(", ");
	return list.length > MAX_NAMED ? `${shown}, … (+${list.length - MAX_NAMED})` : shown;
}

/**
 * Throws the finding for a non-empty diff: the specific code when only one kind
 * of difference exists, MANIFEST_MISMATCH when several do. The message names
 * the files; `details` carries the complete lists.
 */
export function assertNoDiff(d: ManifestDiff, hint?: string): void {
	if (isEmptyDiff(d)) return;
	const parts: string[] = [];
	const kinds: FindingCode[] = [];
	if (d.mismatched.length > 0) {
		parts.push(`digest mismatch: ${names(d.mismatched.map((m) => m.name))}`);
		kinds.push("DIGEST_MISMATCH");
	}
	if (d.missing.length > 0) {
		parts.push(`missing: ${names(d.missing)}`);
		kinds.push("MISSING_FILE");
	}
	if (d.unsigned.length > 0) {
		parts.push(`unsigned: ${names(d.unsigned)}`);
		kinds.push("UNSIGNED_FILE");
	}
	const code: FindingCode = kinds.length === 1 ? (kinds[0] as FindingCode) : "MANIFEST_MISMATCH";
	throw new FtguardError(code, `${parts.join("; ")}${hint ? ` (${hint})` : ""}`, {
		details: { unsigned: d.unsigned, missing: d.missing, mismatched: d.mismatched },
	});
}
