/**
 * The root digest of an artefact on disk, computed as the scan pipeline computed it from the bucket
 * (pipeline/manifest.ts): every file but the commit marker (`<dir>/model.sig`; a single file's marker,
 * `<file>.sigstore.json`, lies beside it), OMS names and order, hashed as the record's signed serialization says
 * (never as the marker beside the bytes says: that file is not what the record's signature covers).
 */
import { lstat, stat } from "node:fs/promises";
import { join } from "node:path";
import { FtguardError, toFtguardError } from "../errors";
import { buildManifest, DEFAULT_IGNORE_PATHS } from "../integrity/manifest";
import type { HashProgress } from "../integrity/types";
import type { HashPlan } from "../pipeline/manifest";
import { MODEL_SIG } from "../pipeline/names";

export interface ArtefactRoot {
	kind: "directory" | "file";
	/** lower-case hex */
	root: string;
	files: number;
	bytes: number;
	plan: HashPlan;
	/** the files hashed, by name relative to the artefact ("." for a single file), shards merged */
	names: string[];
}

async function exists(path: string): Promise<boolean> {
	try {
		await lstat(path);
		return true;
	} catch {
		return false;
	}
}

/**
 * @throws FtguardError the manifest's codes (NOT_FOUND, IO_ERROR, SYMLINK_REFUSED, SPECIAL_FILE, …); UNSIGNED_FILE
 *   for a top-level `.git`, `.gitattributes`, `.github` or `.gitignore`, which the pipeline hashes from a bucket
 *   but an OMS manifest of a directory never does, so no root digest computed here could cover it
 */
export async function artefactRootOnDisk(
	path: string,
	plan: HashPlan,
	onProgress?: (p: HashProgress) => void,
): Promise<ArtefactRoot> {
	let directory: boolean;
	try {
		directory = (await stat(path)).isDirectory();
	} catch (e) {
		throw toFtguardError(e, `cannot read artefact ${path}`);
	}
	if (directory) {
		for (const name of DEFAULT_IGNORE_PATHS) {
			if (await exists(join(path, name))) {
				throw new FtguardError(
					"UNSIGNED_FILE",
					`${path} holds ${name}, which the record's root digest cannot cover (remove it from the deployed copy)`,
				);
			}
		}
	}
	if (directory) {
		// the walk leaves model.sig out: anything there but a regular file (a directory of files, a FIFO) would hide
		// what it holds from the comparison
		const m = await lstat(join(path, MODEL_SIG)).catch(() => undefined);
		if (m !== undefined && !m.isFile())
			throw new FtguardError(
				"SPECIAL_FILE",
				`${join(path, MODEL_SIG)} is not a regular file (the commit marker is one)`,
			);
	}
	const how = plan;
	const manifest = await buildManifest(path, {
		method: how.method,
		...(how.method === "shards" ? { shardSize: how.shardSize, shardEmptyFiles: how.shardEmptyFiles } : {}),
		// the marker is not part of the artefact (pipeline/artefact.ts); a file's marker is outside it anyway
		...(directory ? { ignorePaths: [MODEL_SIG] } : {}),
		...(onProgress ? { onProgress } : {}),
	});
	const names = [
		...new Set(manifest.resources.map((r) => (how.method === "files" ? r.name : r.name.replace(/:\d+:\d+$/, "")))),
	];
	return {
		kind: directory ? "directory" : "file",
		root: manifest.root,
		files: names.length,
		bytes: manifest.bytes,
		plan: how,
		names: directory ? names : ["."],
	};
}
