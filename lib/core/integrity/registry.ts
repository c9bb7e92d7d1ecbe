/**
 * The approved base-model registry: a reviewed, signed list of the exact files
 * (path → SHA-256) of every base model a fine-tuning job may start from.
 *
 * Order of trust: the registry's own signature is verified over the very bytes
 * that are then parsed (no second read that could differ), and only a trusted
 * registry is consulted. An unsigned or tampered registry is "could not check"
 * (exit 2), never "not approved": an attacker who can corrupt the registry must
 * not be able to turn that into an ordinary, ignorable finding either way.
 */
import { readFile } from "node:fs/promises";
import { relative, sep } from "node:path";
import { z } from "zod";
import { FtguardError, toFtguardError } from "../errors";
import { defaultScanOptions } from "../formats";
import { scanPaths } from "../formats/scan";
import { zodMessage } from "../schema";
import { parseBundle } from "./bundle";
import { diffResources } from "./compare";
import { buildManifest } from "./manifest";
import { verifyBlobBundle } from "./sigstore-blob";
import type { SignerInfo, TrustPolicy } from "./trust-policy";
import type { HashProgress } from "./types";
import { isIgnored, normalizeIgnorePaths } from "./walk";

export const REGISTRY_SCHEMA = "ftguard/base-model-registry@1";

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "lower-case hex SHA-256");
const relPath = z
	.string()
	.min(1)
	.refine((p) => !p.startsWith("/") && !p.split("/").some((s) => s === ".." || s === "." || s === ""), {
		message: "relative POSIX path without '.', '..' or empty segments",
	});

const EntrySchema = z
	.object({
		id: z.string().regex(/^[\w.-]+\/[\w.-]+@[\w.-]+$/, "id must look like org/name@revision"),
		files: z.array(z.object({ path: relPath, sha256: sha256Hex }).strict()).min(1),
		note: z.string().optional(),
	})
	.strict()
	.superRefine((e, ctx) => {
		const seen = new Set<string>();
		for (const f of e.files) {
			if (seen.has(f.path)) ctx.addIssue({ code: "custom", message: `duplicate file ${f.path} in ${e.id}` });
			seen.add(f.path);
		}
	});

const RegistrySchema = z
	.object({ schema: z.literal(REGISTRY_SCHEMA), models: z.array(EntrySchema) })
	.strict()
	.superRefine((r, ctx) => {
		const seen = new Set<string>();
		for (const m of r.models) {
			// Two entries with one id would let a reviewer approve one and ship the other.
			if (seen.has(m.id)) ctx.addIssue({ code: "custom", message: `duplicate model id ${m.id}` });
			seen.add(m.id);
		}
	});

export type RegistryEntry = z.infer<typeof EntrySchema>;
export type Registry = z.infer<typeof RegistrySchema>;

export function parseRegistry(bytes: Buffer, source: string): Registry {
	let json: unknown;
	try {
		json = JSON.parse(bytes.toString("utf8"));
	} catch {
		throw new FtguardError("REGISTRY_MALFORMED", `registry ${source} is not valid JSON`);
	}
	const parsed = RegistrySchema.safeParse(json);
	if (!parsed.success) {
		throw new FtguardError("REGISTRY_MALFORMED", `registry ${source} is invalid: ${zodMessage(parsed.error)}`);
	}
	return parsed.data;
}

/** Reads the registry and verifies its Sigstore bundle over exactly the bytes read. */
export async function loadSignedRegistry(
	registryPath: string,
	bundlePath: string,
	policy: TrustPolicy,
): Promise<{ registry: Registry; signer: SignerInfo }> {
	let bytes: Buffer;
	let bundleBytes: Buffer;
	try {
		[bytes, bundleBytes] = await Promise.all([readFile(registryPath), readFile(bundlePath)]);
	} catch (e) {
		throw toFtguardError(e, "cannot read registry");
	}
	return verifyRegistry(bytes, bundleBytes, registryPath, bundlePath, [policy]);
}

/**
 * Verifies the registry's bundle over exactly `bytes` under any one of `policies` (the first that verifies), then
 * parses those bytes. For a registry read from anywhere (files above; S3 in lib/aws/base-model.ts).
 */
export async function verifyRegistry(
	bytes: Buffer,
	bundleBytes: Buffer,
	registrySource: string,
	bundleSource: string,
	policies: readonly TrustPolicy[],
): Promise<{ registry: Registry; signer: SignerInfo }> {
	if (policies.length === 0) throw new FtguardError("USAGE", `no signer is trusted for registry ${registrySource}`);
	let signer: SignerInfo | undefined;
	let last: FtguardError | undefined;
	for (const policy of policies) {
		try {
			const bundle = parseBundle(bundleBytes, bundleSource);
			({ signer } = await verifyBlobBundle(bundle, policy, bytes));
			break;
		} catch (e) {
			const inner = toFtguardError(e);
			// Usage mistakes stay usage mistakes; everything else about the signature is
			// an untrusted registry.
			if (inner.code === "USAGE" || inner.code === "KEY_INVALID") throw inner;
			last = inner;
		}
	}
	if (signer === undefined) {
		const inner = last as FtguardError;
		throw new FtguardError(
			"REGISTRY_UNTRUSTED",
			`registry ${registrySource} is not trusted: ${inner.code}: ${inner.message}`,
			{ cause: inner },
		);
	}
	return { registry: parseRegistry(bytes, registrySource), signer };
}

export type FileStatus = "PASS" | "FAIL" | "MISSING" | "EXTRA";

export interface FileCheck {
	path: string;
	status: FileStatus;
	expected?: string;
	actual?: string;
	/** Set when the file is a pickle container (by content). */
	pickle?: string;
}

export interface BaseModelCheck {
	id: string;
	approved: boolean;
	reasons: string[];
	files: FileCheck[];
}

export interface DirectoryOptions {
	ignorePaths?: string[];
	onProgress?: (p: HashProgress) => void;
}

/** Per-file digests of a base-model directory (a single file is refused: a model is a directory). */
async function hashModelDirectory(dir: string, options: DirectoryOptions) {
	const manifest = await buildManifest(dir, {
		method: "files",
		ignorePaths: options.ignorePaths ?? [],
		...(options.onProgress ? { onProgress: options.onProgress } : {}),
	});
	if (manifest.resources.length === 1 && manifest.resources[0]?.name === ".") {
		throw new FtguardError("NOT_A_DIRECTORY", `${dir} is a file; a base model is a directory`);
	}
	return manifest;
}

const isSafetensors = (p: string) => p.endsWith(".safetensors");

/** The registry entry for `id`, or undefined when the registry does not list it. */
export function findEntry(registry: Registry, id: string): RegistryEntry | undefined {
	return registry.models.find((m) => m.id === id);
}

/** The result for an id the registry does not list. */
export function unknownModel(id: string): BaseModelCheck {
	return { id, approved: false, reasons: [`${id} is not in the registry`], files: [] };
}

/**
 * Whether pickle-format weights are refused for this entry: when it lists safetensors, a pickle beside them is
 * what loaders may pick instead (the pickles are then looked for, by content, in every file).
 */
export function refusesPickles(entry: RegistryEntry): boolean {
	return entry.files.some((f) => isSafetensors(f.path));
}

/**
 * The rule, pure: the files present (relative path → lower-case hex SHA-256) against the entry, and the pickle
 * containers found among them (path → format; only consulted when {@link refusesPickles}). Not approved when any
 * file is not PASS or a pickle sits beside listed safetensors. The directory check below and the base-model gate
 * in AWS (lib/core/pipeline/base-model.ts) both decide here.
 */
export function judgeBaseModel(
	entry: RegistryEntry,
	present: ReadonlyMap<string, string>,
	pickles: ReadonlyMap<string, string> = new Map(),
): BaseModelCheck {
	const expected = entry.files.map((f) => ({ name: f.path, algorithm: "sha256" as const, digest: f.sha256 }));
	const actualResources = [...present].map(([name, digest]) => ({ name, algorithm: "sha256" as const, digest }));
	const diff = diffResources(expected, actualResources, "files");
	const mismatched = new Map(diff.mismatched.map((m) => [m.name, m]));

	const files: FileCheck[] = [];
	for (const f of entry.files) {
		const m = mismatched.get(f.path);
		if (m) files.push({ path: f.path, status: "FAIL", expected: f.sha256, actual: m.actual });
		else if (!present.has(f.path)) files.push({ path: f.path, status: "MISSING", expected: f.sha256 });
		else files.push({ path: f.path, status: "PASS", expected: f.sha256, actual: f.sha256 });
	}
	for (const p of diff.unsigned) files.push({ path: p, status: "EXTRA", actual: present.get(p) as string });

	const reasons: string[] = [];
	const count = (s: FileStatus) => files.filter((f) => f.status === s).length;
	for (const s of ["FAIL", "MISSING", "EXTRA"] as const) {
		if (count(s) > 0) reasons.push(`${count(s)} ${s.toLowerCase()} file(s)`);
	}
	if (refusesPickles(entry) && pickles.size > 0) {
		for (const [path, kind] of pickles) {
			const check = files.find((f) => f.path === path);
			if (check) check.pickle = kind;
		}
		reasons.push(
			`pickle-format weights present where the registry lists safetensors: ${[...pickles.keys()].join(", ")}`,
		);
	}
	files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
	return { id: entry.id, approved: reasons.length === 0, reasons, files };
}

/**
 * Checks a directory against the registry entry for `id`. Not approved when the
 * id is unknown, when any file is not PASS, or when pickle-format weights sit
 * beside an entry that lists safetensors (loaders may pick the pickle).
 */
export async function checkBaseModel(
	dir: string,
	id: string,
	registry: Registry,
	options: DirectoryOptions = {},
): Promise<BaseModelCheck> {
	const entry = findEntry(registry, id);
	if (!entry) return unknownModel(id);
	const manifest = await hashModelDirectory(dir, options);
	const present = new Map(manifest.resources.map((r) => [r.name, r.digest]));
	const pickles = refusesPickles(entry) ? await findPickles(dir, options.ignorePaths ?? []) : new Map<string, string>();
	return judgeBaseModel(entry, present, pickles);
}

/**
 * Pickle-bearing files of a directory, by content, found with the file-safety
 * scanners themselves (a pickle renamed .safetensors is still a pickle): every
 * file the default policy refuses with `pickle-forbidden`, with its format.
 */
async function findPickles(dir: string, ignorePaths: readonly string[]): Promise<Map<string, string>> {
	const report = await scanPaths([dir], { ...defaultScanOptions(), policy: { allowPickle: false } });
	const found = new Map<string, string>();
	const ignored = new Set(normalizeIgnorePaths(ignorePaths));
	for (const f of report.files) {
		const name = relative(dir, f.path).split(sep).join("/");
		if (isIgnored(name, ignored)) continue;
		if (f.findings.some((x) => x.id === "pickle-forbidden")) found.set(name, f.format);
	}
	return found;
}

/** The registry entry for a directory, for the reviewed change that adds it. */
export async function registryEntry(dir: string, id: string, options: DirectoryOptions = {}): Promise<RegistryEntry> {
	const entry = { id, files: [] as RegistryEntry["files"] };
	const idCheck = EntrySchema.safeParse({ id, files: [{ path: "x", sha256: "0".repeat(64) }] });
	if (!idCheck.success) throw new FtguardError("USAGE", `--id must look like org/name@revision, not "${id}"`);
	const manifest = await hashModelDirectory(dir, options);
	entry.files = manifest.resources.map((r) => ({ path: r.name, sha256: r.digest }));
	return entry;
}
