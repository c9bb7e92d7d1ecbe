/**
 * The root digest of an artefact on disk, computed as the scan pipeline computed it from the bucket
 * (pipeline/manifest.ts): every file but the commit marker (`<dir>/model.sig`; a single file's marker,
 * `<file>.sigstore.json`, lies beside it), OMS names and order, hashed as the record's serialization says — or,
 * when the record does not say, as the marker's signed statement says (`hashPlanOf`, the pipeline's own rule).
 */
import { lstat, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FtguardError, toFtguardError } from "../errors";
import { buildManifest, DEFAULT_IGNORE_PATHS } from "../integrity/manifest";
import type { HashProgress } from "../integrity/types";
import { FILES_PLAN, type HashPlan, hashPlanOf } from "../pipeline/manifest";
import { BUNDLE_SUFFIX, MODEL_SIG } from "../pipeline/names";

export interface ArtefactRoot {
	kind: "directory" | "file";
	/** lower-case hex */
	root: string;
	files: number;
	bytes: number;
	plan: HashPlan;
}

async function readIfPresent(path: string): Promise<Buffer | undefined> {
	try {
		return await readFile(path);
	} catch (e) {
		if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
		throw toFtguardError(e, `cannot read ${path}`);
	}
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
	plan: HashPlan | undefined,
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
	const marker = directory ? join(path, MODEL_SIG) : `${path}${BUNDLE_SUFFIX}`;
	const how = plan ?? hashPlanOf(await readIfPresent(marker)) ?? FILES_PLAN;
	const manifest = await buildManifest(path, {
		method: how.method,
		...(how.method === "shards" ? { shardSize: how.shardSize, shardEmptyFiles: how.shardEmptyFiles } : {}),
		// the marker is not part of the artefact (pipeline/artefact.ts); a file's marker is outside it anyway
		...(directory ? { ignorePaths: [MODEL_SIG] } : {}),
		...(onProgress ? { onProgress } : {}),
	});
	const files =
		how.method === "files"
			? manifest.resources.length
			: new Set(manifest.resources.map((r) => r.name.replace(/:\d+:\d+$/, ""))).size;
	return { kind: directory ? "directory" : "file", root: manifest.root, files, bytes: manifest.bytes, plan: how };
}
