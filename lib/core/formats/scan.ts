/**
 * The file-safety engine, driven by a loader model: for each file, every loader that may open it and what that
 * loader reads — each scanner that claims the file, the pickle loaders from byte 0 (they open any file, whatever
 * its name), decompressors and archive readers (their content is scanned as files of its own), ONNX external data
 * (raw weights). The verdict is the worst over those views; a file no view explains is not safe.
 *
 * Fail closed at every step: a scanner that throws gives a `scanner-error` finding (unsafe), a container over its
 * bounds is `container-unchecked` (unsafe), and a name claiming a format the bytes are not is malformed.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { toFtguardError } from "../errors";
import { DEFAULT_IGNORE_PATHS } from "../integrity/manifest";
import { normalizeIgnorePaths, walkModel } from "../integrity/walk";
import { type Codec, codecOf, DEFAULT_INFLATE_LIMITS, type InflateLimits, inflate } from "./compressed";
import { globToRegExp, inertView } from "./inert";
import { isPickleOpcode, PLAIN_FAILS_FIRST } from "./pickle";
import { analyzeStream } from "./pickle-stream";
import { BufferSource, FileSource, SliceSource } from "./source";
import { getMember, hasData, isLink, isTarHeader, listTar, type TarMember } from "./tar";
import {
	type ByteSource,
	type Finding,
	type FormatName,
	type Scanner,
	type ScanPolicy,
	type ScanResult,
	type Verdict,
	verdictOf,
} from "./types";
import { isZip, listZip, readEntry } from "./zip";

export interface FileReport {
	/** As given on the command line, or joined under the directory given. */
	path: string;
	format: FormatName;
	verdict: Verdict;
	findings: Finding[];
	/** The rule a malformed file broke. */
	malformed?: string;
	size: number;
	bytesRead: number;
	/** Files this one's loader reads as raw bytes (absolute paths); scanPaths uses them and drops the field. */
	rawReferences?: string[];
}

export interface ScanSummary {
	files: number;
	safe: number;
	unsafe: number;
	malformed: number;
	unknown: number;
	bytesRead: number;
}

export interface ScanReport {
	files: FileReport[];
	summary: ScanSummary;
}

export interface ScanOptions {
	policy: ScanPolicy;
	/** The scanners to use, in detection order. */
	scanners: readonly Scanner[];
	/** Used for archives (zip) that no scanner claims: searches every entry for pickles. */
	archiveFallback?: Scanner;
	/** Also run on files another scanner claimed, when their `alsoIn` finds their format there too (polyglots). */
	polyglots?: readonly Scanner[];
	/**
	 * Accept only formats whose structure ftguard checks: text, JSON, images and other files inert by name and content
	 * are not accepted (`--strict`). @default false
	 */
	strict?: boolean;
	/** Bounds for decompressing containers. @default DEFAULT_INFLATE_LIMITS */
	inflateLimits?: InflateLimits;
	/** @default 100_000 */
	maxFiles?: number;
	/** Files scanned at once. @default 4 */
	concurrency?: number;
}

const HEAD_BYTES = 64 * 1024;

async function scanOne(
	openPath: string,
	displayPath: string,
	name: string,
	modelDir: string | undefined,
	options: ScanOptions,
	raw = false,
): Promise<FileReport> {
	const source = await FileSource.open(openPath).catch((e) => {
		throw toFtguardError(e, `cannot open ${displayPath}`);
	});
	try {
		return await scanSource(source, { displayPath, name, path: openPath, modelDir, ...(raw ? { raw } : {}) }, options);
	} finally {
		await source.close();
	}
}

/** What the engine needs to know about a source besides its bytes. */
export interface SourceTarget {
	/** how the report names it */
	displayPath: string;
	/** its file name (some detections and the pickle fallback look at it) */
	name: string;
	/** a filesystem path for scanners that resolve references next to it (ONNX external data) */
	path: string;
	/** the model directory, when the source is one file of a model */
	modelDir: string | undefined;
	/**
	 * Raw bytes a model's runtime reads (ONNX external data, an OpenVINO weight blob): not claimed as a pickle by its
	 * name, still read by pickle.load from byte 0 (torch.load("weights.bin") is a plausible mistake), and raw weights
	 * when nothing else explains it.
	 */
	raw?: boolean;
}

/**
 * The engine for one source — a file on disk, an object read by ranged GETs, or what a container held — as the
 * loader model says: every scanner that claims the file (each loader that may open it), the pickle loaders from byte
 * 0 (they open anything), containers decompressed and archives opened with their content scanned as files, and a
 * file nothing explains is not safe. The verdict is the worst over all of them. Read errors propagate.
 */
export async function scanSource(
	source: ByteSource,
	t: SourceTarget,
	options: ScanOptions,
	nest: Nesting = topNesting(options),
): Promise<FileReport> {
	const head = await source.read(0, HEAD_BYTES);
	const claims = claimsOf(head, t.name, source.size, options).filter(
		(c) => !(t.raw && NAME_PICKLE_FORMATS.has(c.format)),
	);
	// nothing in the head: a format whose loader looks further (an HDF5 superblock after a large user block)
	if (claims.length === 0) {
		const past = await foundPastHead(source, head, t.name, options);
		if (past) claims.push(past);
	}
	const acc: Acc = { findings: [], malformed: undefined, rawReferences: [] };
	const primary = claims[0];
	for (const scanner of claims) {
		const r = await runScanner(scanner, source, t, options, head);
		add(acc, r, scanner === primary ? undefined : `read as ${scanner.format}: `);
	}
	// Any zip may be handed to torch.load whatever its first entry says (a "Keras" or "npz" archive with an
	// archive/data.pkl inside loads as a torch checkpoint): zips claimed by another scanner are searched for pickles too.
	const fallback = options.archiveFallback;
	if (fallback && isZip(head) && !claims.includes(fallback))
		add(acc, await runScanner(fallback, source, t, options, head), `read as ${fallback.format}: `);
	// A file can be two formats at once, each loader reading the one it looks for.
	for (const also of options.polyglots ?? []) {
		if (claims.some((c) => c.format === also.format)) continue;
		if (!(await also.alsoIn?.(source, head, t.name, primary?.format ?? "unknown"))) continue;
		add(acc, await runScanner(also, source, t, options, head), `read as ${also.format}: `);
	}
	// pickle.load, joblib.load, torch.load (legacy path) and numpy.load(allow_pickle=True) unpickle whatever they are
	// given, from byte 0, whatever its name
	if (!claims.some((s) => BYTE0_PICKLE_FORMATS.has(s.format)))
		add(acc, await pickleView(source, head, options.policy), "read by pickle.load from byte 0: ");
	let format: FormatName = primary?.format ?? "unknown";
	const codec = codecOf(head, t.name);
	if (codec !== undefined) {
		const inner = await scanCompressed(source, codec, t, options, nest);
		if (inner.opened) format = primary ? format : codec;
		merge(acc, inner);
	} else if (!claims.some((s) => STRUCTURED_ARCHIVES.has(s.format))) {
		const inner = await scanArchive(source, head, t, options, nest);
		if (inner.opened) {
			format = primary ? format : inner.opened;
			// the pytorch-tar scanner notes members it left unscanned: here they were scanned
			acc.findings = acc.findings.filter((f) => f.id !== "tar-members-not-scanned");
		}
		merge(acc, inner);
	}
	if (format === "unknown") format = await unexplained(source, head, t, options, acc);
	return report(t.displayPath, format, acc, source);
}

/** Containment depth and the decompression budget shared by everything one top-level file holds. */
export interface Nesting {
	depth: number;
	budget: { bytes: number };
}

const MAX_DEPTH = 4;

function topNesting(options: ScanOptions): Nesting {
	return { depth: 0, budget: { bytes: (options.inflateLimits ?? DEFAULT_INFLATE_LIMITS).maxBytes * 4 } };
}

/** Findings and the first malformed rule gathered over every loader's view of one file. */
interface Acc {
	findings: Finding[];
	malformed: string | undefined;
	rawReferences: string[];
}

function add(acc: Acc, r: ScanResult, prefix?: string): void {
	for (const f of r.findings) acc.findings.push(prefix ? { ...f, message: `${prefix}${f.message}` } : f);
	if (r.malformed !== undefined && acc.malformed === undefined && prefix === undefined) acc.malformed = r.malformed;
	if (r.rawReferences) acc.rawReferences.push(...r.rawReferences);
}

/** What a container or archive held, judged: its findings, and whether it opened at all. */
interface Inner {
	opened?: FormatName;
	findings: Finding[];
	malformed?: string;
}

function merge(acc: Acc, inner: Inner): void {
	acc.findings.push(...inner.findings);
	if (inner.malformed !== undefined && acc.malformed === undefined) acc.malformed = inner.malformed;
}

/** Formats claimed from a name and a first opcode: not for raw weights, whose byte-0 view is the plain unpickler's. */
const NAME_PICKLE_FORMATS: ReadonlySet<FormatName> = new Set(["pickle", "pytorch-legacy"]);
/** Claimed formats that are themselves the byte-0 pickle reading (no second view needed). */
const BYTE0_PICKLE_FORMATS: ReadonlySet<FormatName> = new Set(["pickle", "pytorch-legacy", "pytorch-tar"]);
/**
 * Archives whose loader reads named records, not files a user extracts: their scanners model them. (A tar is
 * always opened as well: SageMaker's model.tar.gz is extracted; torch's own records in it are left to its scanner.)
 */
const STRUCTURED_ARCHIVES: ReadonlySet<FormatName> = new Set(["pytorch-zip", "numpy-npz", "keras", "keras-h5"]);

/** Every scanner that claims the file by its head (each is a loader that may open it), in registry order. */
export function claimsOf(head: Buffer, name: string, size: number, options: ScanOptions): Scanner[] {
	// one scanner per format: two that claim the same format (by magic and by name) stand for the same loader
	const out = options.scanners.filter(
		(s, i, all) =>
			s.detect(head, name, size) && !all.slice(0, i).some((o) => o.format === s.format && o.detect(head, name, size)),
	);
	// a zip no scanner claims is searched for pickles by scanSource (torch.load opens any zip) and its members
	// scanned as files: the torch reading of it is one more view, its "not a torch zip" no verdict on the file
	return out;
}

/** The first scanner that claims the file (see `claimsOf` for all of them). */
export function chooseScanner(head: Buffer, name: string, size: number, options: ScanOptions): Scanner | undefined {
	return claimsOf(head, name, size, options)[0];
}

/**
 * The pickle loaders' view of any file: one pickle from byte 0 under a plain Unpickler. A file they fail on before
 * importing anything runs nothing in them (no finding); one that reaches an import is judged as a pickle.
 */
async function pickleView(source: ByteSource, head: Buffer, policy: ScanPolicy): Promise<ScanResult> {
	if (source.size === 0 || !isPickleOpcode(head[0])) return { findings: [] };
	if (PLAIN_FAILS_FIRST.has(head[0] as number)) return { findings: [] };
	const common = { policy, resync: false, streamSize: source.size, forbiddenFinding: false } as const;
	const first = await analyzeStream(source, { ...common, maxPickles: 1, plainLoader: true });
	const findings = [...first.findings];
	let reached = first.globals.length > 0;
	// torch.load's legacy path reads on after a first pickle that loads (magic number, protocol, sys_info, the
	// object with a persistent_load, storage keys): the pickles that follow are read as torch reads them
	if (first.pickles === 1 && first.malformed === undefined && first.end < source.size) {
		const rest = await analyzeStream(source, {
			...common,
			offset: first.end,
			maxPickles: LEGACY_PICKLES - 1,
			emptyExtensionRegistry: true,
		});
		findings.push(...rest.findings);
		reached ||= rest.globals.length > 0;
	}
	if (!reached && !findings.some((f) => f.id === "pickle-too-large" || f.id === "pickle-too-complex"))
		return { findings: [] };
	return { findings: policy.allowPickle ? findings : [PICKLE_FORBIDDEN, ...findings] };
}

/** Pickles torch.load's legacy path reads in a row. */
const LEGACY_PICKLES = 5;

const PICKLE_FORBIDDEN: Finding = {
	id: "pickle-forbidden",
	severity: "high",
	message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
};

/** Decompresses a stream a loader would decompress, and scans what it holds as a file of its own. */
async function scanCompressed(
	source: ByteSource,
	codec: Codec,
	t: SourceTarget,
	options: ScanOptions,
	nest: Nesting,
): Promise<Inner> {
	const limits = options.inflateLimits ?? DEFAULT_INFLATE_LIMITS;
	if (nest.depth >= MAX_DEPTH) return refusedInner(`${codec} stream nested deeper than ${MAX_DEPTH} containers`);
	const r = await inflate(source, codec, { ...limits, maxBytes: Math.min(limits.maxBytes, nest.budget.bytes) });
	if (r.kind === "not-stream") return { findings: [] }; // every loader fails on it as well: nothing runs
	if (r.kind === "refused") return { opened: codec, ...refusedInner(r.reason) };
	nest.budget.bytes -= r.data.length;
	const name = innerName(t.name, codec);
	const inner = await scanSource(
		new BufferSource(r.data),
		{ displayPath: `${t.displayPath}!${codec}`, name, path: t.path, modelDir: undefined },
		options,
		{ depth: nest.depth + 1, budget: nest.budget },
	);
	const out = nested(inner, `${codec}-decompressed content`);
	if (r.error !== undefined)
		out.findings.push({
			id: "container-truncated",
			severity: "low",
			message: `${codec} stream breaks after ${r.data.length} bytes (${r.error}); what came before was scanned`,
		});
	return { opened: codec, ...out };
}

/** Opens a tar or a zip that no structured scanner claimed: each member is a file someone may extract and load. */
async function scanArchive(
	source: ByteSource,
	head: Buffer,
	t: SourceTarget,
	options: ScanOptions,
	nest: Nesting,
): Promise<Inner> {
	const kind = isZip(head) ? "zip" : isTarHeader(head) ? "tar" : undefined;
	if (kind === undefined) return { findings: [] };
	if (nest.depth >= MAX_DEPTH) return { opened: kind, ...refusedInner(`${kind} nested deeper than ${MAX_DEPTH}`) };
	const members = kind === "zip" ? await zipMembers(source, nest, options) : await tarMembers(source);
	if (typeof members === "string")
		return kind === "tar" ? { findings: [] } : { opened: kind, findings: [], malformed: members };
	const out: Inner = { opened: kind, findings: [] };
	for (const m of members) {
		if ("refused" in m) {
			out.findings.push({ ...refusedFinding(m.refused), location: m.name });
			continue;
		}
		if ("escape" in m) {
			out.findings.push({
				id: "archive-path-escape",
				severity: "critical",
				message: `${m.escape}: extracting the archive writes outside its directory`,
				location: m.name,
			});
			continue;
		}
		const inner = await scanSource(
			m.source,
			{ displayPath: `${t.displayPath}!/${m.name}`, name: m.name, path: t.path, modelDir: undefined },
			options,
			{ depth: nest.depth + 1, budget: nest.budget },
		);
		const n = nested(inner, m.name);
		out.findings.push(...n.findings);
		if (n.malformed !== undefined && out.malformed === undefined) out.malformed = n.malformed;
	}
	return out;
}

type Member =
	| { name: string; source: ByteSource }
	| { name: string; refused: string }
	| { name: string; escape: string };

/** An absolute path or one with a ".." segment (after normalising). */
function escapesRoot(path: string): boolean {
	if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return true;
	let depth = 0;
	for (const seg of path.split("/")) {
		if (seg === "..") depth--;
		else if (seg !== "" && seg !== ".") depth++;
		if (depth < 0) return true;
	}
	return false;
}

const dirOf = (p: string): string => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");

function joinPosix(dir: string, rel: string): string {
	const parts: string[] = [];
	for (const seg of `${dir}/${rel}`.split("/")) {
		if (seg === "" || seg === ".") continue;
		if (seg === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
		else parts.push(seg);
	}
	return parts.join("/");
}

/** The member a link resolves to (the last of that name, links followed a few hops), when it holds data. */
function linkTarget(members: readonly TarMember[], target: string): TarMember | undefined {
	let name = target;
	for (let hop = 0; hop < 8; hop++) {
		const m = members.findLast((x) => joinPosix("", x.name) === joinPosix("", name));
		if (m === undefined) return undefined;
		if (!isLink(m.type)) return hasData(m.type) ? m : undefined;
		name = m.type === "1" ? m.linkname : joinPosix(dirOf(m.name), m.linkname);
	}
	return undefined;
}

const TORCH_TAR_RECORDS = ["storages", "tensors", "pickle"] as const;

async function tarMembers(source: ByteSource): Promise<Member[] | string> {
	const listing = await listTar(source);
	if (typeof listing === "string") return listing;
	// tarfile could not list it: tarfile.open fails, nothing is extracted (torch then reads it as a legacy pickle,
	// which the byte-0 view covered)
	if (listing.readError !== undefined && listing.members.length === 0) return listing.readError;
	// the records torch.load reads (a pre-1.0 checkpoint) are judged by the pytorch-tar scanner as torch reads them
	const torch = new Set(TORCH_TAR_RECORDS.map((n) => getMember(listing, n)));
	const out: Member[] = [];
	for (const m of listing.members) {
		// tarfile.extractall without a filter (Python < 3.14's default) writes where the name or a link says
		if (escapesRoot(m.name)) out.push({ name: m.name, escape: `member path leaves the extraction directory` });
		if (isLink(m.type)) {
			const target = m.type === "1" ? m.linkname : joinPosix(dirOf(m.name), m.linkname);
			if (m.linkname.startsWith("/") || escapesRoot(target)) {
				out.push({
					name: m.name,
					escape: `${m.type === "1" ? "hard" : "sym"}link to ${JSON.stringify(m.linkname)} outside the extraction directory`,
				});
				continue;
			}
			// once extracted, the link's name holds its target's bytes: judged under the link's name
			const data = linkTarget(listing.members, target);
			if (data) out.push({ name: m.name, source: new SliceSource(source, data.dataOffset, data.size) });
			continue;
		}
		if (hasData(m.type) && !torch.has(m))
			out.push({ name: m.name, source: new SliceSource(source, m.dataOffset, m.size) });
	}
	if (listing.unsupported !== undefined)
		out.push({ name: "(rest of the archive)", refused: `tar listing incomplete: ${listing.unsupported}` });
	return out;
}

async function zipMembers(source: ByteSource, nest: Nesting, options: ScanOptions): Promise<Member[] | string> {
	const listing = await listZip(source);
	if (typeof listing === "string") return listing;
	const limits = options.inflateLimits ?? DEFAULT_INFLATE_LIMITS;
	const out: Member[] = [];
	for (const e of listing.entries) {
		if (e.name.endsWith("/")) continue;
		const r = await readEntry(source, e, Math.min(limits.maxBytes, nest.budget.bytes));
		if ("error" in r) out.push({ name: e.name, refused: `cannot read zip entry: ${r.error}` });
		else if (r.truncated !== undefined) out.push({ name: e.name, refused: `zip entry ${r.truncated}` });
		else {
			nest.budget.bytes -= r.data.length;
			out.push({ name: e.name, source: new BufferSource(r.data) });
		}
	}
	return out;
}

/** A nested file's report as findings of its container (location says where inside). */
function nested(inner: FileReport, where: string): { findings: Finding[]; malformed?: string } {
	const findings = inner.findings.map((f) => ({
		...f,
		message: `in ${where} (${inner.format}): ${f.message}`,
		location: f.location ? `${where} › ${f.location}` : where,
	}));
	return inner.malformed !== undefined ? { findings, malformed: `${where}: ${inner.malformed}` } : { findings };
}

function refusedFinding(reason: string): Finding {
	return { id: "container-unchecked", severity: "high", message: `not checked: ${reason}` };
}

function refusedInner(reason: string): Inner {
	return { findings: [refusedFinding(reason)] };
}

const CODEC_SUFFIX: Readonly<Record<Codec, RegExp>> = {
	gzip: /\.(gz|gzip)$/i,
	zlib: /\.(z|zlib)$/i,
	bz2: /\.(bz2|bzip2)$/i,
	xz: /\.xz$/i,
	lzma: /\.lzma$/i,
	lz4: /\.lz4$/i,
	zfile: /$^/,
};

/** The name a decompressed stream goes by: `model.tar.gz` → `model.tar`, `x.tgz` → `x.tar`, else unchanged. */
function innerName(name: string, codec: Codec): string {
	if (/\.tgz$/i.test(name)) return name.replace(/\.tgz$/i, ".tar");
	return name.replace(CODEC_SUFFIX[codec], "");
}

/** Names that claim a format: a file with one whose bytes are not that format is malformed, not unknown. */
const NAMED_FORMATS: readonly [RegExp, string][] = [
	[/\.safetensors$/i, "safetensors"],
	[/\.gguf$/i, "GGUF"],
	[/\.onnx$/i, "ONNX"],
	[/\.npy$/i, "NumPy .npy"],
	[/\.npz$/i, "NumPy .npz"],
	[/\.keras$/i, "Keras"],
	[/\.(pkl|pickle|pt|pth|ckpt|joblib|sav)$/i, "pickle / PyTorch"],
];

/**
 * A file none of the loaders' views explained (no scanner claimed it, no container held it): inert by name and
 * content, raw weights (decided by scanPaths, which sees the referencing model), declared inert by the policy,
 * malformed when its name claims a format it is not — and otherwise not safe.
 */
async function unexplained(
	source: ByteSource,
	head: Buffer,
	t: SourceTarget,
	options: ScanOptions,
	acc: Acc,
): Promise<FormatName> {
	if (!options.strict) {
		if (isGgml(head)) return "raw-weights";
		const inert = await inertView(source, t.name, head);
		if (inert) {
			acc.findings.push(...inert.findings);
			return inert.format;
		}
	}
	// raw bytes a model's runtime reads: what no other view explained (inert formats keep their checks above)
	if (t.raw) return "raw-weights";
	const named = NAMED_FORMATS.find(([re]) => re.test(t.name));
	if (named) {
		acc.malformed ??= `named like a ${named[1]} file, but its bytes are not one`;
		return "unknown";
	}
	const accepted = (options.policy.inertNames ?? []).some((g) => globToRegExp(g).test(t.name));
	acc.findings.push(
		accepted
			? { id: "unknown-format", severity: "low", message: "format not recognised; accepted as inert by the policy" }
			: {
					id: "unknown-format",
					severity: "high",
					message:
						"format not recognised: no modelled loader explains this file, so it cannot be shown safe (declare it inert in the policy if it is)",
				},
	);
	return "unknown";
}

/** Legacy GGML / GGJT / GGMF / GGLA weights (llama.cpp before GGUF): tensors read by C, nothing imported. */
export function isGgml(head: Buffer): boolean {
	const m = head.subarray(0, 4).toString("latin1");
	return m === "lmgg" || m === "tjgg" || m === "fmgg" || m === "algg";
}

/** The first polyglot format found in a file nothing claimed by its head. */
async function foundPastHead(
	source: ByteSource,
	head: Buffer,
	name: string,
	options: ScanOptions,
): Promise<Scanner | undefined> {
	for (const s of options.polyglots ?? []) if (await s.alsoIn?.(source, head, name, "unknown")) return s;
	return undefined;
}

/** Runs one scanner; a scanner that throws yields a finding, never a pass. */
async function runScanner(
	scanner: Scanner,
	source: ByteSource,
	t: SourceTarget,
	options: ScanOptions,
	head?: Buffer,
): Promise<ScanResult> {
	try {
		return await scanner.scan({
			source,
			name: t.name,
			path: t.path,
			policy: options.policy,
			...(head !== undefined ? { head } : {}),
			...(t.modelDir !== undefined ? { modelDir: t.modelDir } : {}),
		});
	} catch (e) {
		const err = toFtguardError(e);
		return {
			findings: [
				{ id: "scanner-error", severity: "high", message: `the ${scanner.format} scanner failed: ${err.message}` },
			],
		};
	}
}

function report(path: string, format: FormatName, acc: Acc, source: ByteSource): FileReport {
	const result = { findings: acc.findings, ...(acc.malformed !== undefined ? { malformed: acc.malformed } : {}) };
	return {
		path,
		format,
		verdict: verdictOf(result),
		findings: result.findings,
		...(acc.malformed !== undefined ? { malformed: acc.malformed } : {}),
		size: source.size,
		bytesRead: source.bytesRead,
		...(acc.rawReferences.length > 0 ? { rawReferences: acc.rawReferences } : {}),
	};
}

interface Target {
	openPath: string;
	displayPath: string;
	name: string;
	modelDir: string | undefined;
}

async function targets(paths: readonly string[], maxFiles: number): Promise<Target[]> {
	const out: Target[] = [];
	const ignorePaths = normalizeIgnorePaths(DEFAULT_IGNORE_PATHS);
	for (const given of paths) {
		// Symlinks inside a directory are followed only within it (walkModel refuses escapes).
		const walk = await walkModel(given, { allowSymlinks: true, ignorePaths, maxFiles, maxDepth: 128 });
		for (const f of walk.files) {
			out.push({
				openPath: f.openPath,
				displayPath: walk.isFile ? given : join(given, f.name),
				name: walk.isFile ? walk.modelName : f.name,
				modelDir: walk.isFile ? undefined : resolve(given),
			});
			if (out.length > maxFiles) break;
		}
	}
	return out;
}

/**
 * Files that a model of the same artefact reads as raw bytes — ONNX external data, an OpenVINO IR's `.bin` beside its
 * `.xml` — are judged again as raw: a name like `weights.bin` does not make random tensor bytes a pickle, the plain
 * unpickler's byte-0 view still applies, and what nothing else explains is raw weights.
 */
async function resolveRawWeights(files: FileReport[], list: readonly Target[], options: ScanOptions): Promise<void> {
	const referenced = new Set<string>();
	for (const f of files) for (const r of f.rawReferences ?? []) referenced.add(resolve(r));
	for (const f of files) delete f.rawReferences;
	for (const [i, t] of list.entries()) {
		if (files[i]?.verdict === "safe" && files[i]?.format !== "unknown") continue;
		if (!referenced.has(resolve(t.openPath)) && !isOpenVinoWeights(t.openPath)) continue;
		// judged again as the raw bytes it is: the views a runtime reading raw bytes, or a user's pickle.load, have
		files[i] = await scanOne(t.openPath, t.displayPath, t.name, t.modelDir, options, true);
	}
}

/** `x.bin` beside an OpenVINO IR `x.xml` (`<net …>`): the runtime reads it as the IR's weight blob. */
function isOpenVinoWeights(path: string): boolean {
	if (!/\.bin$/i.test(path)) return false;
	const xml = join(dirname(path), `${basename(path).slice(0, -4)}.xml`);
	try {
		if (!existsSync(xml) || statSync(xml).size > 64 * 1024 * 1024) return false;
		return /<net\b[^>]*>/.test(readFileSync(xml, "latin1").slice(0, 4096));
	} catch {
		return false;
	}
}

/** Scans every file under `paths` (files or directories, recursed). */
export async function scanPaths(paths: readonly string[], options: ScanOptions): Promise<ScanReport> {
	const list = await targets(paths, options.maxFiles ?? 100_000);
	const files: FileReport[] = new Array(list.length);
	let next = 0;
	const worker = async () => {
		for (let i = next++; i < list.length; i = next++) {
			const t = list[i] as Target;
			files[i] = await scanOne(t.openPath, t.displayPath, t.name, t.modelDir, options);
		}
	};
	await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, Math.max(list.length, 1)) }, worker));
	await resolveRawWeights(files, list, options);
	files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
	const count = (v: Verdict) => files.filter((f) => f.verdict === v).length;
	return {
		files,
		summary: {
			files: files.length,
			safe: count("safe"),
			unsafe: count("unsafe"),
			malformed: count("malformed"),
			unknown: files.filter((f) => f.format === "unknown").length,
			bytesRead: files.reduce((n, f) => n + f.bytesRead, 0),
		},
	};
}
