/**
 * Runs a bundled CommonJS file through `vm.Script` with a V8 code cache, the way
 * the v8-compile-cache package does: Node 20 has no compile cache of its own for
 * ES modules (`module.enableCompileCache` is Node ≥ 22.1), so without this every
 * `ftguard files` process compiles the scanners again, lazily, during its first
 * scan (measured: ~5 ms of a ~14 ms first scan of a 1 GiB torch zip).
 *
 * The cache is produced after the work (`save`), so it holds the bytecode of
 * every function the scan ran, not only the top level — of the first run: a later
 * run through code that run did not reach (another format) compiles that code
 * lazily as before, and the cache is not rewritten on a hit. It is keyed by the
 * SHA-256 of the source, the Node version and the architecture; V8 checks its
 * own version, flags and the source length again and rejects what does not fit
 * (then the file is compiled as usual and the cache rewritten). A cache can only
 * make the load faster or be ignored: any error reading or writing it is ignored.
 *
 * Where: beside the bundle (`<dir>/.v8-cache/`), which is exactly as trusted as
 * the code it caches; when that is not writable (a root-owned global install),
 * a per-user directory under os.tmpdir() that must be ours and writable by no one
 * else — a code cache is bytecode that V8 runs unchecked, so one planted by another
 * local user would be code execution.
 */
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/** hit: V8 accepted the cache; miss: there was none; rejected: V8 refused it; off: no usable cache directory. */
export type CodeCacheStatus = "hit" | "miss" | "rejected" | "off";

export interface CachedModule<T> {
	exports: T;
	cache: CodeCacheStatus;
	/** The cache file used or to be written (undefined when `off`). */
	cacheFile: string | undefined;
	/** Writes the cache unless it was a hit; call it after the work, so lazily compiled functions are in it. */
	save(): void;
}

export interface CodeCacheOptions {
	/** Cache directory; `false` disables the cache. @default `<dir of file>/.v8-cache`, else a per-user tmp dir */
	cacheDir?: string | false;
}

/** A directory that only this user can write (created 0700 if missing), or undefined. */
function privateDir(dir: string): string | undefined {
	try {
		mkdirSync(dir, { recursive: true, mode: 0o700 });
		const st = lstatSync(dir);
		const uid = process.getuid?.();
		if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) return undefined;
		return dir;
	} catch {
		return undefined;
	}
}

function cacheDirFor(file: string, option: string | false | undefined): string | undefined {
	if (option === false) return undefined;
	if (option !== undefined) return privateDir(option);
	return (
		privateDir(join(dirname(file), ".v8-cache")) ??
		privateDir(join(tmpdir(), `ftguard-v8-cache-${process.getuid?.() ?? "user"}`))
	);
}

/** `require(file)` for a self-contained CommonJS bundle, compiled with a V8 code cache. */
export function requireWithCodeCache<T>(file: string, options: CodeCacheOptions = {}): CachedModule<T> {
	const source = readFileSync(file, "utf8");
	const dir = cacheDirFor(file, options.cacheDir);
	let cacheFile: string | undefined;
	let cachedData: Buffer | undefined;
	if (dir !== undefined) {
		const key = createHash("sha256")
			.update(source)
			.update(`\0${process.version}\0${process.arch}`)
			.digest("hex")
			.slice(0, 32);
		cacheFile = join(dir, `${basename(file)}-${key}.bin`);
		try {
			cachedData = readFileSync(cacheFile);
		} catch {
			cachedData = undefined;
		}
	}
	// Node's own CommonJS wrapper, so the bundle sees what `require` would give it.
	const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, {
		filename: file,
		...(cachedData !== undefined ? { cachedData } : {}),
	});
	const cache: CodeCacheStatus =
		dir === undefined ? "off" : cachedData === undefined ? "miss" : script.cachedDataRejected ? "rejected" : "hit";
	const module = { exports: {} as T };
	const wrapper = script.runInThisContext() as (
		exports: T,
		require: NodeJS.Require,
		module: { exports: T },
		filename: string,
		dirname: string,
	) => void;
	wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
	return {
		exports: module.exports,
		cache,
		cacheFile,
		save() {
			if (cache === "hit" || cache === "off" || cacheFile === undefined) return;
			const tmp = `${cacheFile}.${process.pid}.tmp`;
			try {
				writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
				renameSync(tmp, cacheFile);
			} catch {
				try {
					unlinkSync(tmp);
				} catch {
					// nothing was written
				}
			}
		},
	};
}
