/**
 * Finds the files of a model the way the reference `model_signing` tool does
 * (sigstore/model-transparency, `_serialization/file.py`, `_filesystem.py`),
 * with the extra refusals a verifier that runs on untrusted uploads needs.
 *
 * Reference behaviour reproduced here, because any difference changes the
 * manifest and so breaks signatures made by the reference tool:
 * - The model is `model_path` plus everything `Path.glob("**\/*")` yields:
 *   hidden files are included, empty directories contribute nothing, and a
 *   symlink to a directory is listed but never descended into (pathlib's `**`
 *   does not follow directory symlinks, in every Python version).
 * - A single-file model has one file, named "." (`path.relative_to(path)`).
 * - An ignore path `p` removes `model/p` and everything under it (pathlib
 *   `is_relative_to`, i.e. whole components: `a` ignores `a/b`, not `ab`), and is
 *   checked before any other rule, so an ignored symlink or FIFO is no error.
 *   It is anchored at the model root: `.git` does not ignore `sub/.git`.
 * - Symlinks are refused unless allowed, including a model path that is itself a
 *   symlink; an allowed symlink to a file is hashed under the link's name.
 *
 * Stricter than the reference (it would follow these; we refuse, fail closed):
 * an allowed symlink whose target is outside the model (PATH_ESCAPE), a
 * directory symlink into an ignored path (its content would be covered by
 * nothing), symlink loops, special files, names that are not valid UTF-8, more
 * than `maxFiles` entries and deeper than `maxDepth` directories.
 *
 * The walk is synchronous per entry (an async `lstat` per file costs ~10x the
 * syscall) but yields to the event loop every few thousand entries, so an abort
 * signal or a progress timer still runs on a directory with millions of files.
 */
import { type BigIntStats, type Dir, lstatSync, opendirSync, realpathSync, statSync } from "node:fs";
import { basename, isAbsolute, relative, resolve, sep } from "node:path";
import { FtguardError, toFtguardError } from "../errors";

/** One regular file to hash. */
export interface WalkedFile {
	/** POSIX path relative to the model root; "." for a single-file model. */
	name: string;
	/** Absolute path to open: the real target for an allowed symlink. */
	openPath: string;
	size: number;
	/** Identity at walk time; the hasher checks it again after `open`, so a file swapped in between is noticed. */
	dev: bigint;
	ino: bigint;
}

export interface WalkResult {
	/** OMS subject name: the last component of the model path. */
	modelName: string;
	/** True when the model path is a single file. */
	isFile: boolean;
	files: WalkedFile[];
	/** Directory entries examined (ignored subtrees are not entered, so not counted). */
	entries: number;
}

export interface WalkOptions {
	allowSymlinks: boolean;
	/** Already normalised by {@link normalizeIgnorePaths}. */
	ignorePaths: readonly string[];
	maxFiles: number;
	maxDepth: number;
	signal?: AbortSignal | undefined;
}

/** Entries between two yields to the event loop. */
const YIELD_EVERY = 4096;

/**
 * Normalises user ignore paths to the POSIX, model-relative form the reference
 * records in `serialization.ignore_paths`: `./a/` → `a`, duplicates removed,
 * sorted. Refuses (USAGE) absolute paths, `..` components and paths that name
 * the model root itself, because those would ignore something outside the model
 * or everything in it — never what a user meant, and a way to sign nothing.
 */
export function normalizeIgnorePaths(paths: readonly string[]): string[] {
	const out = new Set<string>();
	for (const raw of paths) {
		if (typeof raw !== "string" || raw.length === 0) {
			throw new FtguardError("USAGE", "ignore path must be a non-empty string");
		}
		if (raw.includes("\0")) throw new FtguardError("USAGE", `ignore path contains a NUL byte: ${show(raw)}`);
		if (raw.startsWith("/") || /^[A-Za-z]:[\\/]/.test(raw)) {
			throw new FtguardError("USAGE", `ignore path must be relative to the model directory: ${show(raw)}`);
		}
		const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
		if (parts.includes("..")) {
			throw new FtguardError("USAGE", `ignore path must not contain "..": ${show(raw)}`);
		}
		if (parts.length === 0) {
			throw new FtguardError("USAGE", `ignore path names the model directory itself: ${show(raw)}`);
		}
		out.add(parts.join("/"));
	}
	return [...out].sort();
}

/**
 * `path` relative to the model directory (POSIX), if it lies inside it: how the signature file becomes an
 * ignore path when signing and verifying. Lexical, as both sides compute it the same way.
 */
export function pathInside(modelPath: string, path: string): string | undefined {
	const rel = relative(modelPath, path);
	if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
	return rel.split(sep).join("/");
}

/** True when `rel` is an ignore path or lies under one (whole components only). */
export function isIgnored(rel: string, ignorePaths: ReadonlySet<string>): boolean {
	if (ignorePaths.size === 0) return false;
	if (ignorePaths.has(rel)) return true;
	for (let i = rel.indexOf("/"); i !== -1; i = rel.indexOf("/", i + 1)) {
		if (ignorePaths.has(rel.slice(0, i))) return true;
	}
	return false;
}

/** Lists the regular files of a model directory, or the one file of a file model. */
export async function walkModel(modelPath: string, options: WalkOptions): Promise<WalkResult> {
	checkAborted(options.signal);
	// Not path.resolve(): it would fold "m/.." lexically, where the OS (and the
	// reference) follows "m" first if it is a symlink.
	const given = isAbsolute(modelPath) ? modelPath : `${process.cwd()}${sep}${modelPath}`;
	const rootLstat = fsCall(() => lstatSync(given, { bigint: true }), "model path", modelPath);
	let rootPath = given;
	let rootStat: BigIntStats = rootLstat;
	if (rootLstat.isSymbolicLink()) {
		if (!options.allowSymlinks) {
			throw new FtguardError(
				"SYMLINK_REFUSED",
				`model path is a symlink: ${show(modelPath)} (allow symlinks to follow it)`,
			);
		}
		rootPath = realpathOrThrow(given, modelPath);
		rootStat = fsCall(() => statSync(rootPath, { bigint: true }), "model path", modelPath);
	}
	const modelName = modelNameOf(modelPath);

	if (rootStat.isFile()) {
		// The reference ignores nothing in a file model: `model/<p>` can never equal `model`.
		return {
			modelName,
			isFile: true,
			entries: 1,
			files: [fileOf(".", rootPath, rootStat)],
		};
	}
	if (!rootStat.isDirectory()) {
		throw new FtguardError(
			"SPECIAL_FILE",
			`model path is not a regular file or directory (${kindOf(rootStat)}): ${show(modelPath)}`,
		);
	}

	// Containment is judged on real paths: a parent directory of the model may
	// itself be a symlink, which is the user's business, not an escape.
	const realRoot = realpathOrThrow(rootPath, modelPath);
	const ignored = new Set(options.ignorePaths);
	const files: WalkedFile[] = [];
	let entries = 0;
	let sinceYield = 0;
	const stack: Array<{ abs: string; rel: string; depth: number }> = [{ abs: rootPath, rel: "", depth: 0 }];

	while (stack.length > 0) {
		const dirEntry = stack.pop();
		if (dirEntry === undefined) break;
		const { abs: dirAbs, rel: dirRel, depth } = dirEntry;
		// Buffer names: a name that is not valid UTF-8 would otherwise be replaced
		// by U+FFFD, so two files could get one manifest name and neither could be opened.
		// (@types/node does not declare "buffer" for opendir; Node accepts it and returns Buffer names.)
		const dirOptions = {
			encoding: "buffer" as BufferEncoding,
			bufferSize: 128,
		};
		const dir = fsCall(() => opendirSync(dirAbs, dirOptions), "cannot read directory", dirRel || ".");
		try {
			for (;;) {
				const dirent = fsCall(() => (dir as Dir).readSync(), "cannot read directory", dirRel || ".");
				if (dirent === null) break;
				entries++;
				if (entries > options.maxFiles) {
					throw new FtguardError(
						"TOO_MANY_FILES",
						`model has more than ${options.maxFiles} entries (raise maxFiles to hash it)`,
						{
							details: { maxFiles: options.maxFiles },
						},
					);
				}
				if (++sinceYield >= YIELD_EVERY) {
					sinceYield = 0;
					await new Promise<void>((r) => setImmediate(r));
					checkAborted(options.signal);
				}
				const name = decodeName(dirent.name as unknown as Buffer, dirRel);
				const rel = dirRel === "" ? name : `${dirRel}/${name}`;
				if (isIgnored(rel, ignored)) continue;
				const abs = `${dirAbs}${sep}${name}`;
				const st = fsCall(() => lstatSync(abs, { bigint: true }), "cannot stat", rel);

				if (st.isFile()) {
					files.push(fileOf(rel, abs, st));
				} else if (st.isDirectory()) {
					if (depth + 1 > options.maxDepth) {
						throw new FtguardError(
							"PATH_TOO_DEEP",
							`directories nested deeper than ${options.maxDepth} levels: ${show(rel)}`,
						);
					}
					stack.push({ abs, rel, depth: depth + 1 });
				} else if (st.isSymbolicLink()) {
					const file = followSymlink(abs, rel, realRoot, ignored, options.allowSymlinks);
					if (file) files.push(file);
				} else {
					throw new FtguardError("SPECIAL_FILE", `not a regular file or directory (${kindOf(st)}): ${show(rel)}`);
				}
			}
		} finally {
			dir.closeSync();
		}
	}

	if (files.length === 0) {
		// As the reference: signing an empty set proves nothing about a model.
		throw new FtguardError(
			"NOT_FOUND",
			`model contains no regular files after applying ignore paths: ${show(modelPath)}`,
		);
	}
	return { modelName, isFile: false, files, entries };
}

/**
 * An allowed symlink: a link to a file inside the model is hashed (content of
 * the target, name of the link); a link to a directory inside the model is
 * skipped as pathlib's glob skips it. Anything else is refused.
 */
function followSymlink(
	abs: string,
	rel: string,
	realRoot: string,
	ignored: ReadonlySet<string>,
	allowSymlinks: boolean,
): WalkedFile | undefined {
	if (!allowSymlinks) {
		throw new FtguardError("SYMLINK_REFUSED", `symlink not allowed: ${show(rel)} (allow symlinks to hash it)`);
	}
	const real = realpathOrThrow(abs, rel);
	const targetRel = relativeInside(realRoot, real);
	if (targetRel === undefined) {
		throw new FtguardError("PATH_ESCAPE", `symlink points outside the model directory: ${show(rel)}`);
	}
	const st = fsCall(() => statSync(real, { bigint: true }), "cannot stat symlink target of", rel);
	if (st.isFile()) return fileOf(rel, real, st);
	if (st.isDirectory()) {
		if (targetRel !== "" && isIgnored(targetRel, ignored)) {
			throw new FtguardError("PATH_ESCAPE", `symlink points into an ignored path: ${show(rel)} -> ${show(targetRel)}`);
		}
		return undefined;
	}
	throw new FtguardError(
		"SPECIAL_FILE",
		`symlink target is not a regular file or directory (${kindOf(st)}): ${show(rel)}`,
	);
}

function fileOf(name: string, openPath: string, st: BigIntStats): WalkedFile {
	return { name, openPath, size: Number(st.size), dev: st.dev, ino: st.ino };
}

/** The model-relative POSIX path of `real`, "" for the root, undefined when outside. */
function relativeInside(realRoot: string, real: string): string | undefined {
	if (real === realRoot) return "";
	const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
	if (!real.startsWith(prefix)) return undefined;
	return real.slice(prefix.length).split(sep).join("/");
}

function realpathOrThrow(abs: string, shown: string): string {
	try {
		return realpathSync(abs);
	} catch (e) {
		const errno = (e as NodeJS.ErrnoException).code;
		if (errno === "ELOOP") throw new FtguardError("SYMLINK_REFUSED", `symlink loop: ${show(shown)}`, { cause: e });
		if (errno === "ENOENT")
			throw new FtguardError("NOT_FOUND", `dangling symlink: ${show(shown)}`, {
				cause: e,
			});
		throw fsError(e, "cannot resolve", shown);
	}
}

/**
 * The reference's subject name: `Path(model_path).name`, or the resolved
 * directory's name when that is empty or "..". pathlib drops "." components and
 * trailing slashes first, so "model/." and "model/" are both "model".
 */
function modelNameOf(modelPath: string): string {
	const parts = modelPath.split("/").filter((p) => p !== "" && p !== ".");
	const last = parts[parts.length - 1];
	if (last !== undefined && last !== "..") return last;
	try {
		return basename(realpathSync(modelPath));
	} catch {
		return basename(resolve(modelPath));
	}
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(raw: Buffer | string, dirRel: string): string {
	if (typeof raw === "string") return raw;
	try {
		return utf8.decode(raw);
	} catch {
		const where = dirRel === "" ? "the model directory" : show(dirRel);
		throw new FtguardError("IO_ERROR", `file name is not valid UTF-8 in ${where}: ${show(raw.toString("latin1"))}`);
	}
}

function kindOf(st: BigIntStats): string {
	if (st.isFIFO()) return "fifo";
	if (st.isSocket()) return "socket";
	if (st.isCharacterDevice()) return "character device";
	if (st.isBlockDevice()) return "block device";
	if (st.isSymbolicLink()) return "symlink";
	return "unknown type";
}

/** Runs a synchronous fs call and turns its errno into an FtguardError naming the model-relative path. */
function fsCall<T>(fn: () => T, what: string, shown: string): T {
	try {
		return fn();
	} catch (e) {
		throw fsError(e, what, shown);
	}
}

function fsError(e: unknown, what: string, shown: string): FtguardError {
	const errno = (e as NodeJS.ErrnoException | undefined)?.code;
	if (errno === "ENOENT")
		return new FtguardError("NOT_FOUND", `${what}: no such file or directory: ${show(shown)}`, { cause: e });
	if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) {
		return new FtguardError("IO_ERROR", `${what}: ${errno.toLowerCase()}: ${show(shown)}`, { cause: e });
	}
	return toFtguardError(e, `${what} ${show(shown)}`);
}

export function checkAborted(signal: AbortSignal | undefined): void {
	if (signal?.aborted)
		throw new FtguardError("ABORTED", "hashing was aborted", {
			cause: signal.reason,
		});
}

/**
 * A path for a one-line message: JSON-quoted, so a name holding a newline or a
 * terminal escape cannot forge extra output lines.
 */
export function show(p: string): string {
	return JSON.stringify(p);
}
