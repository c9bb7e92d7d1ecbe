/**
 * Scanners for PyTorch's own checkpoint containers: `torch.save` zip archives (read as torch.load's zip reader
 * sees them) and legacy (pre-1.6, `_use_new_zipfile_serialization=False`) files. Plain pickles are
 * pickle-scanner.ts's; pre-1.0 tar checkpoints pytorch-tar.ts's.
 *
 * Only the pickle streams are read. Pickles are read in growing chunks through
 * the ByteSource and re-analysed until they end, so a 1 GiB legacy checkpoint
 * costs the few KiB of its five pickles, and tensor bytes are never touched.
 */
import { analyzePickle, startsWithProto } from "./pickle";
import {
	analyzeStream,
	FIRST_CHUNK,
	GROWTH,
	judgeWeightsOnly,
	MAX_PICKLE_BYTES,
	tooLargeFinding,
	toScanResult,
} from "./pickle-stream";
import { inputSource } from "./source";
import {
	type ByteSource,
	type Finding,
	guarded,
	type ScanInput,
	type Scanner,
	type ScanPolicy,
	type ScanResult,
} from "./types";
import { checkWeightsOnly } from "./weights-only";
import { entryDataOffset, isZip, le32, listZip, readEntry, type ZipEntry } from "./zip";

function forbidden(policy: ScanPolicy, location?: string): Finding[] {
	if (policy.allowPickle) return [];
	return [
		{
			id: "pickle-forbidden",
			severity: "high",
			message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
			...(location ? { location } : {}),
		},
	];
}

// Legacy torch.save writes the magic number 0x1950a86a20f9469cfc6c as a LONG1 pickle first.
const LEGACY_MAGIC = Buffer.from([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001n;

/** A legacy torch.save file: its first pickle is the magic number (the plain pickle scanner leaves it to this one). */
export function isLegacyTorch(head: Buffer): boolean {
	return startsWithProto(head) && head.subarray(2, 2 + LEGACY_MAGIC.length).equals(LEGACY_MAGIC);
}

/**
 * --allow-pickle on a legacy torch file, as `_legacy_load` reads it with the weights_only unpickler: magic number,
 * protocol version and sys_info (`pickle_module.load`), the main object (persistent ids: storages), the storage
 * keys (each must name a storage the main object loaded); then raw storage bytes, never read here.
 */
async function scanLegacyAllowed(src: ByteSource): Promise<ScanResult> {
	const steps = ["magic number", "protocol version", "sys_info", "main object", "storage keys"] as const;
	const findings: Finding[] = [];
	const keys = new Set<string>();
	const max = Math.min(MAX_PICKLE_BYTES, src.size);
	// One buffer from byte 0 for the five pickles, grown (×4) only when one runs past it: the storages after them
	// are never read.
	let buf = await src.read(0, Math.min(FIRST_CHUNK, max));
	let offset = 0;
	for (const step of steps) {
		const location = `pickle ${steps.indexOf(step) + 1} (${step})`;
		if (offset >= src.size) return { findings, malformed: `${location}: EOFError (the file ends before it)` };
		const mode = step === "main object" ? "legacy" : "none";
		let r = checkWeightsOnly(buf, { mode, start: offset, partial: buf.length < max });
		while (r.outcome === "incomplete") {
			if (buf.length >= max) return { findings: [...findings, tooLargeFinding(location, MAX_PICKLE_BYTES)] };
			const more = await src.read(buf.length, Math.min(max, buf.length * GROWTH) - buf.length);
			if (more.length === 0) break;
			buf = Buffer.concat([buf, more]);
			r = checkWeightsOnly(buf, { mode, start: offset, partial: buf.length < max });
		}
		const j = judgeWeightsOnly(buf, r, { start: offset, location });
		findings.push(...j.findings);
		if (j.malformed !== undefined || r.outcome !== "loaded" || r.end === undefined)
			return j.malformed !== undefined ? { findings, malformed: j.malformed } : { findings };
		const v = r.value;
		if (step === "magic number" && !(v?.t === "int" && v.v === MAGIC_NUMBER))
			return { findings, malformed: "Invalid magic number; corrupt file?" };
		if (step === "protocol version" && !(v?.t === "int" && v.v === PROTOCOL_VERSION))
			return { findings, malformed: "Invalid protocol version" };
		if (step === "main object")
			for (const s of r.storages) {
				keys.add(s.key);
				if (s.viewKey !== undefined) keys.add(s.viewKey);
			}
		if (step === "storage keys") {
			if (v?.t !== "strlist") return { findings, malformed: "storage keys are not a list of keys" };
			const missing = v.v.find((k) => !keys.has(k));
			if (missing !== undefined)
				return { findings, malformed: `storage key ${JSON.stringify(missing)} names no storage (AssertionError)` };
		}
		offset = r.end;
	}
	return { findings };
}

/**
 * Legacy torch.save: magic-number, protocol, sys_info, main object and
 * storage-keys pickles in a row, then raw storage bytes. The five pickles are
 * analysed; the storage bytes are not read.
 */
export const pytorchLegacyScanner: Scanner = {
	format: "pytorch-legacy",
	detect(head) {
		return isLegacyTorch(head);
	},
	scan(input: ScanInput) {
		return guarded(async () => {
			if (input.policy.allowPickle) return scanLegacyAllowed(inputSource(input));
			const r = await analyzeStream(inputSource(input), { policy: input.policy, maxPickles: 5 });
			if (r.malformed === undefined && r.pickles < 5)
				return { findings: r.findings, malformed: `legacy torch file holds ${r.pickles} of 5 pickles` };
			return toScanResult(r);
		});
	},
};

const SNIFF_BYTES = 64;
/** Pickle bytes analysed per archive, all entries together. */
const ARCHIVE_BUDGET = 512 * 1024 * 1024;
/** Budget for an entry torch never reads that is named or starts like a pickle (another tool may unpickle it). */
const EXTRA_MAX_BYTES = 16 * 1024 * 1024;

/** miniz compares names with ASCII-only case folding (MZ_TOLOWER) when a lookup is not case-sensitive. */
function foldAscii(s: string): string {
	return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/**
 * The archive as PyTorch's zip reader (PyTorchStreamReader over miniz, torch 1.13) sees it: records are looked up
 * as `<top>/<name>`, `<top>` being the first entry's name up to its first '/', with miniz's case-insensitive
 * lookup (`data.PKL` is data.pkl). Several entries may match one name case-insensitively; miniz's binary search
 * picks one of them, so every match is judged (the worst one decides).
 */
class TorchZipView {
	readonly top: string | undefined;
	private readonly byFolded = new Map<string, ZipEntry[]>();
	constructor(readonly entries: readonly ZipEntry[]) {
		const first = entries[0]?.name;
		const slash = first?.indexOf("/") ?? -1;
		this.top = first !== undefined && slash >= 0 ? first.slice(0, slash) : undefined;
		for (const e of entries) {
			const k = foldAscii(e.name);
			const list = this.byFolded.get(k);
			if (list) list.push(e);
			else this.byFolded.set(k, [e]);
		}
	}
	/** Entries `getRecord(name)` may return. */
	record(name: string): ZipEntry[] {
		return this.top === undefined ? [] : (this.byFolded.get(foldAscii(`${this.top}/${name}`)) ?? []);
	}
	/** `getAllRecords()`: every name with the `<top>/` prefix removed; throws (a string) if one lacks it (exact case). */
	allRecords(): string[] | string {
		if (this.top === undefined) return `file in archive is not in a subdirectory: ${this.entries[0]?.name ?? "(none)"}`;
		const prefix = `${this.top}/`;
		const out: string[] = [];
		for (const e of this.entries) {
			if (!e.name.startsWith(prefix)) return `file in archive is not in a subdirectory ${prefix}: ${e.name}`;
			out.push(e.name.slice(prefix.length));
		}
		return out;
	}
}

/** Records torch.load reads as raw bytes, never unpickled (besides the storages `data/<key>`). */
const RAW_RECORDS = new Set(["version", ".data/version", "byteorder", ".data/serialization_id"]);

/** torch 1.13's PyTorchStreamReader accepts file format versions 1 … 10 (caffe2/serialize/versions.h). */
const MIN_FORMAT_VERSION = 1n;
const MAX_FORMAT_VERSION = 10n;

/**
 * The EOCD's own view of where the central directory ends. miniz (torch) reads the central directory at the offset
 * the EOCD gives; CPython's zipfile shifts it by the difference when bytes were prepended. If the two differ, the
 * loaders may list different entries: unverifiable.
 */
async function splitView(src: ByteSource): Promise<string | undefined> {
	const n = Math.min(src.size, 22 + 0xffff + 20);
	const tail = await src.read(src.size - n, n);
	for (let i = tail.length - 22; i >= 0; i--) {
		if (le32(tail, i) !== 0x06054b50) continue;
		const eocdAt = src.size - n + i;
		const cdSize = le32(tail, i + 12);
		const cdOffset = le32(tail, i + 16);
		if (cdSize === 0xffffffff || cdOffset === 0xffffffff) return undefined;
		const zip64 = i >= 20 && le32(tail, i - 20) === 0x07064b50;
		if (zip64) return undefined;
		const shift = eocdAt - cdSize - cdOffset;
		return shift !== 0
			? `the central directory ends ${shift} bytes before the end-of-central-directory record: PyTorch's reader and Python's zipfile list different entries`
			: undefined;
	}
	return undefined;
}

/** An entry's bytes (stored or deflated, the two methods miniz reads), at most `max`. */
async function entryBytes(src: ByteSource, e: ZipEntry, max: number): Promise<{ data: Buffer } | { error: string }> {
	const r = await readEntry(src, e, max);
	if ("error" in r) return r;
	if (r.truncated !== undefined && e.method === 0 && e.compressedSize > max)
		return { error: `${e.name}: pickle longer than ${max} bytes` };
	return { data: r.data };
}

/** A stored entry's first bytes (deflated ones are inflated, bounded), for the extras' sniff. */
async function entryHead(src: ByteSource, e: ZipEntry): Promise<Buffer | undefined> {
	if (e.method === 0) {
		const start = await entryDataOffset(src, e);
		if (typeof start === "string") return undefined;
		return src.read(start, Math.min(SNIFF_BYTES, e.compressedSize));
	}
	if (e.method === 8) {
		const r = await readEntry(src, { ...e, compressedSize: Math.min(e.compressedSize, 4096) }, 8 * 1024 * 1024);
		return "data" in r ? r.data.subarray(0, SNIFF_BYTES) : undefined;
	}
	return undefined;
}

function isPickleName(name: string): boolean {
	return /\.(pkl|pickle)$/i.test(name);
}

interface ZipScan {
	findings: Finding[];
	/** Pickle records judged: none means a zip torch.load cannot read and no pickle in it (npz, Keras). */
	pickles: number;
	malformed: string | undefined;
	budget: number;
}

/**
 * One pickle record torch unpickles (`data.pkl`, or a pickle-like entry torch never reads), judged under the policy:
 * --allow-pickle: the weights_only model (`mode` says what its persistent ids mean); default: the analyser, for names.
 * Returns the storages its persistent ids load (when the model loaded it).
 */
async function judgeRecord(
	src: ByteSource,
	e: ZipEntry,
	policy: ScanPolicy,
	z: ZipScan,
	role: "data" | "extra",
): Promise<string[] | undefined> {
	const max = Math.min(z.budget, role === "data" ? MAX_PICKLE_BYTES : EXTRA_MAX_BYTES);
	const before = src.bytesRead;
	const got = await entryBytes(src, e, max);
	z.budget -= Math.max(src.bytesRead - before, "data" in got ? got.data.length : 0, 1);
	if (role === "data") z.pickles++;
	if ("error" in got) {
		if (role === "data") {
			z.malformed ??= got.error;
			z.findings.push({
				id: "unreadable-pickle-entry",
				severity: "high",
				message: `pickle entry cannot be read: ${got.error}`,
				location: e.name,
			});
		}
		return undefined;
	}
	const buf = got.data;
	const r = checkWeightsOnly(buf, { mode: "zip" });
	if (!policy.allowPickle) {
		const a = analyzePickle(buf, { policy, location: e.name, forbiddenFinding: false, maxPickles: 1 });
		// A torch-unread entry that merely starts like a pickle counts only if it parses or imports something.
		if (role === "extra" && a.pickles === 0 && a.findings.length === 0) return undefined;
		if (role === "extra") z.pickles++;
		z.findings.push(...a.findings);
		if (role === "data" && a.malformed !== undefined) z.malformed ??= `${e.name}: ${a.malformed}`;
	} else {
		const j = judgeWeightsOnly(buf, r, { location: e.name });
		if (role === "extra" && j.findings.length === 0 && r.outcome !== "loaded") return undefined;
		if (role === "extra") z.pickles++;
		z.findings.push(...j.findings);
		if (role === "data" && j.malformed !== undefined) z.malformed ??= j.malformed;
	}
	return r.outcome === "loaded" ? r.storages.map((s) => s.key) : undefined;
}

/**
 * `torch.save` zip archives, read the way `torch.load` reads them: the records it looks up under the archive's top
 * folder (case-insensitively, as miniz does) — `version` / `.data/version`, `data.pkl`, the storages `data/<key>`
 * that data.pkl's persistent ids name (raw bytes: never read or analysed), and `constants.pkl`, whose presence
 * makes torch.load hand the file to torch.jit.load (TorchScript code runs on load). Entries torch never reads are
 * analysed only if named like a pickle or starting with a PROTO opcode (another tool may unpickle them).
 */
export const pytorchZipScanner: Scanner = {
	format: "pytorch-zip",
	detect(head, name) {
		if (!isZip(head)) return false;
		if (head.includes(".pkl")) return true;
		// First entry's data is a pickle, or a torch-like name with nothing that marks npz / keras.
		const nameLen = head.length >= 30 ? head.readUInt16LE(26) : 0;
		const extraLen = head.length >= 30 ? head.readUInt16LE(28) : 0;
		if (startsWithProto(head, 30 + nameLen + extraLen)) return true;
		return /\.(pt|pth|bin|ckpt|tar|mar)$/i.test(name) && !head.includes(".npy") && !head.includes("config.json");
	},
	scan(input: ScanInput) {
		const { policy } = input;
		const source = inputSource(input);
		return guarded(async () => {
			const listing = await listZip(source);
			if (typeof listing === "string") return { findings: forbidden(policy), malformed: `not a zip: ${listing}` };
			const z: ZipScan = {
				findings: [],
				pickles: 0,
				malformed: listing.fromLocalHeaders ? listing.problems[0] : undefined,
				budget: ARCHIVE_BUDGET,
			};
			const split = listing.fromLocalHeaders ? undefined : await splitView(source);
			if (split !== undefined) z.findings.push({ id: "zip-split-view", severity: "high", message: split });
			const view = new TorchZipView(listing.entries);
			const records = view.allRecords();
			if (typeof records === "string") z.malformed ??= records;
			else if (records.includes("constants.pkl")) {
				z.findings.push({
					id: "torchscript-archive",
					severity: "high",
					message:
						"a TorchScript archive (constants.pkl): torch.load hands it to torch.jit.load, which runs its TorchScript code on load (torch ≥ 2 refuses it with weights_only=True)",
					location: `${view.top}/constants.pkl`,
				});
			}
			await checkVersion(source, view, z);
			const dataPkl = view.record("data.pkl");
			if (dataPkl.length === 0) z.malformed ??= "PytorchStreamReader failed locating file data.pkl: file not found";
			const read = new Set<ZipEntry>(dataPkl);
			const storages = new Set<string>();
			let complete = dataPkl.length > 0;
			for (const e of dataPkl) {
				const keys = await judgeRecord(source, e, policy, z, "data");
				if (keys === undefined) complete = false;
				for (const k of keys ?? []) storages.add(k);
			}
			// The records torch reads as raw bytes.
			for (const name of RAW_RECORDS) for (const e of view.record(name)) read.add(e);
			for (const key of storages) {
				const found = view.record(`data/${key}`);
				if (found.length === 0) z.malformed ??= `PytorchStreamReader failed locating file data/${key}: file not found`;
				for (const e of found) read.add(e);
			}
			// TorchScript's pickles, judged like data.pkl (default policy: for names; the archive is unsafe anyway).
			for (const name of ["constants.pkl"]) for (const e of view.record(name)) read.add(e);
			const storageName =
				view.top === undefined ? undefined : new RegExp(`^${escapeRe(foldAscii(view.top))}/data/\\d+$`);
			for (const e of listing.entries) {
				if (read.has(e)) continue;
				// data.pkl not fully read: its storages are not known, so torch-style storage names are taken as storages.
				if (!complete && storageName?.test(foldAscii(e.name))) continue;
				if (z.budget <= 0) {
					z.findings.push({
						id: "archive-too-large",
						severity: "high",
						message: `pickle entries beyond ${ARCHIVE_BUDGET} bytes in all were not checked`,
						location: e.name,
					});
					break;
				}
				const named = isPickleName(e.name);
				if (!named) {
					const head = await entryHead(source, e);
					if (head === undefined || !(startsWithProto(head) && (head[1] ?? 0) >= 2)) continue;
				}
				await judgeRecord(source, e, policy, z, "extra");
			}
			const findings = [
				...(z.pickles > 0 ? forbidden(policy, dataPkl[0]?.name ?? listing.entries[0]?.name) : []),
				...z.findings,
			];
			return z.malformed !== undefined ? { findings, malformed: z.malformed } : { findings };
		});
	},
};

function escapeRe(s: string): string {
	return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The format version record torch checks before anything else (`.data/version`, else `version`). */
async function checkVersion(src: ByteSource, view: TorchZipView, z: ZipScan): Promise<void> {
	const e = view.record(".data/version")[0] ?? view.record("version")[0];
	if (e === undefined) {
		z.malformed ??= "PytorchStreamReader failed locating file version: file not found";
		return;
	}
	const got = await entryBytes(src, e, 64);
	if ("error" in got) {
		z.malformed ??= got.error;
		return;
	}
	// std::stoull: leading blanks, then digits.
	const m = /^[ \t\n\v\f\r]*\+?(\d+)/.exec(got.data.toString("latin1"));
	const v = m ? BigInt(m[1] as string) : undefined;
	if (v === undefined) z.malformed ??= `${e.name}: not a version number (stoull)`;
	else if (v < MIN_FORMAT_VERSION || v > MAX_FORMAT_VERSION)
		z.malformed ??= `${e.name}: file format version ${v} outside the ${MIN_FORMAT_VERSION}–${MAX_FORMAT_VERSION} torch reads`;
}
