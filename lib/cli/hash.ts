/** `ftguard hash`: the OMS manifest of a model directory or file. */
import type { Command } from "commander";
import { FtguardError } from "../core/errors";
import type { SerializationMethod } from "../core/integrity/types";
import { commaList, formatBytes, type Io, printJson, processIo, progressLine, runCommand } from "./io";

interface HashFlags {
	method: string;
	shardSize?: string;
	ignorePaths: string[];
	allowSymlinks?: boolean;
	json?: boolean;
}

export function parseMethod(value: string): SerializationMethod {
	if (value !== "files" && value !== "shards") {
		throw new FtguardError("USAGE", `--method must be "files" or "shards", not "${value}"`);
	}
	return value;
}

export function parseShardSize(value: string | undefined): number | undefined {
	if (value === undefined) return undefined;
	if (!/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(Number(value))) {
		throw new FtguardError("USAGE", `--shard-size must be a positive integer number of bytes, not "${value}"`);
	}
	return Number(value);
}

export function registerHash(program: Command, setExit: (code: number) => void): void {
	program
		.command("hash")
		.description("print the OpenSSF Model Signing manifest (per-file SHA-256 and root digest) of a model")
		.argument("<path>", "model directory or single model file")
		.option("--method <files|shards>", "serialization method", "files")
		.option("--shard-size <bytes>", "shard size for --method shards (default 1000000000)")
		.option("--ignore-paths <a,b>", "paths relative to the model directory to leave out", commaList, [])
		.option("--allow-symlinks", "hash symlinked files that stay inside the model directory")
		.option("--json", "machine-readable output")
		.action(async (path: string, flags: HashFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => hash(io, path, flags)));
		});
}

async function hash(io: Io, path: string, flags: HashFlags): Promise<0> {
	const method = parseMethod(flags.method);
	const shardSize = parseShardSize(flags.shardSize);
	if (shardSize !== undefined && method !== "shards") {
		throw new FtguardError("USAGE", "--shard-size only applies to --method shards");
	}
	const { buildManifest } = await import("../core/integrity/manifest");
	const progress = progressLine(io, "hashing");
	const manifest = await buildManifest(path, {
		method,
		...(shardSize !== undefined ? { shardSize } : {}),
		ignorePaths: flags.ignorePaths,
		allowSymlinks: Boolean(flags.allowSymlinks),
		onProgress: progress.update,
	}).finally(progress.done);
	if (io.json) {
		printJson(io, {
			ok: true,
			name: manifest.modelName,
			root: manifest.root,
			resources: manifest.resources,
			serialization: manifest.serialization,
			bytes: manifest.bytes,
		});
	} else {
		for (const r of manifest.resources) io.out(`${r.digest}  ${r.name}`);
		io.out(`root sha256:${manifest.root}  (${manifest.resources.length} resources, ${formatBytes(manifest.bytes)})`);
	}
	return 0;
}
