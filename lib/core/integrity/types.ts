/**
 * Shared types of the integrity core. Field names inside `Serialization` and
 * `ResourceDescriptor` are the OpenSSF Model Signing (OMS) wire names, so a
 * manifest can be compared with, and printed as, the predicate of a model.sig.
 */

export type SerializationMethod = "files" | "shards";

/** OMS `predicate.serialization`. */
export interface Serialization {
	method: SerializationMethod;
	hash_type: "sha256";
	allow_symlinks: boolean;
	/** Paths relative to the model directory, POSIX separators, sorted. */
	ignore_paths: string[];
	/** Only for method "shards". */
	shard_size?: number;
}

/** OMS `predicate.resources[]`: a file (method "files") or `path:start:end` (method "shards"). */
export interface ResourceDescriptor {
	name: string;
	algorithm: "sha256";
	/** Lower-case hex. */
	digest: string;
}

export interface Manifest {
	/** OMS subject name: the base name of the model path. */
	modelName: string;
	/** Lower-case hex SHA-256 over the concatenated raw resource digests in canonical order. */
	root: string;
	/** In canonical (OMS) order. */
	resources: ResourceDescriptor[];
	serialization: Serialization;
	/** Total bytes hashed. */
	bytes: number;
}

export interface HashProgress {
	bytesDone: number;
	bytesTotal: number;
	filesDone: number;
	filesTotal: number;
}

export interface HashOptions {
	/** @default "files" */
	method?: SerializationMethod;
	/** Bytes per shard for method "shards". @default 1_000_000_000 (OMS default) */
	shardSize?: number;
	/**
	 * Extra paths to ignore, relative to the model directory. The OMS defaults
	 * (.git, .gitattributes, .github, .gitignore) are always ignored.
	 */
	ignorePaths?: string[];
	/** @default false */
	allowSymlinks?: boolean;
	/** Worker threads. @default min(available parallelism, 8) */
	concurrency?: number;
	/** Refuse directories with more entries than this (TOO_MANY_FILES). @default 100_000 */
	maxFiles?: number;
	/** Refuse directories nested deeper than this below the model root (PATH_TOO_DEEP). @default 128 */
	maxDepth?: number;
	/**
	 * Method "shards" only: record an empty file as one `path:0:0` shard. The
	 * released reference tool leaves empty files out of shard manifests (its
	 * `_get_shards` yields nothing for size 0); sigstore/model-transparency#653
	 * proposes recording them. Set this to reproduce a signature made that way.
	 * @default false
	 */
	shardEmptyFiles?: boolean;
	onProgress?: (p: HashProgress) => void;
	signal?: AbortSignal;
}
