/**
 * PyTorch's pre-1.0 TAR checkpoints (torch < 0.4 `torch.save`, often named
 * `*.pth.tar`). torch 1.13 still loads them with `torch.load(weights_only=False)`
 * (`_legacy_load` → `legacy_load`, for a real file at offset 0), unpickling:
 *
 *   storages  pickle(num_storages); per storage pickle((key, location, storage_type))
 *             + raw bytes (`_new_with_file`: int64 element count, count × element size);
 *             then pickle(storage_views)
 *   tensors   pickle(num_tensors); per tensor pickle((key, storage_id, tensor_type))
 *             + raw int32 ndim, 4 skipped bytes, ndim int64 sizes, ndim int64 strides,
 *             int64 storage offset
 *   pickle    the object (persistent ids name the storages / tensors)
 *
 * Members are found with tarfile's `getmember` (the LAST member of that exact
 * name, after PAX / GNU long names: see tar.ts). Every pickle torch would
 * unpickle is analysed with the pickle analyser under the usual policy
 * (pickle-forbidden by default, the allow-list with --allow-pickle). To find
 * where each pickle starts, the records are walked exactly: the counts and the
 * storage type come from a strict decoder of the tiny pickles torch wrote
 * (pickle-values.ts: ints, strings, tuples, globals, memo), which gives values only — the
 * security judgement is always the analyser's. A record the decoder cannot
 * read, a storage type of unknown element size, link or sparse members, or a
 * budget exceeded make the walk stop with a high finding (fail closed: torch
 * might read on where we cannot); a walk that stops where torch would fail too
 * (missing member, data past its end, a count that is not an int) is
 * `malformed`, with a finding saying why.
 *
 * Two more paths are covered:
 * - If tarfile raises TarError (a member's data runs past the end of the file, a
 *   bad header after a PAX / GNU record), torch reads the file from byte 0 as a
 *   legacy pickle stream; so does torch.load of the same bytes from a buffer
 *   (io.BytesIO has no fileno(): the tar route is never tried). The bytes from
 *   offset 0 are therefore always analysed; a tar header that also unpickles to
 *   an import is a polyglot (`pytorch-tar-polyglot`, high).
 * - A tar without torch's layout never reaches an unpickler in torch.load
 *   (getmember('storages') raises KeyError before anything is unpickled). But
 *   tars are also how other tools ship pickles (TorchServe `.mar`, `*.tar` of a
 *   model directory, unpacked and loaded by name): every member that is named
 *   like a pickle or starts like one is analysed under the same policy, and a
 *   zip member (a torch zip checkpoint inside the tar) goes to the zip scanner.
 *   Other members are left alone with a low finding saying so, never silently.
 */
import { analyzePickle, isPickleOpcode, looksLikePickle, type PickleAnalysis, startsWithProto } from "./pickle";
import { judgeWeightsOnly } from "./pickle-stream";
import { decodePickleValue, type PickleValue } from "./pickle-values";
import { pytorchZipScanner } from "./pytorch";
import { inputSource, SliceSource } from "./source";
import { getMember, hasData, isLink, isTarHeader, listTar, type TarMember } from "./tar";
import {
	type ByteSource,
	type Finding,
	guarded,
	type ScanInput,
	type Scanner,
	type ScanPolicy,
	type ScanResult,
} from "./types";
import { checkWeightsOnly, type PersistentMode } from "./weights-only";
import { isZip } from "./zip";

/** Records (storages + tensors) walked at most. */
const MAX_RECORDS = 200_000;
/** Largest pickle analysed in one member (the main object). */
const MAX_MEMBER_PICKLE = 256 * 1024 * 1024;
/** Largest metadata record (count / tuple) pickle. */
const MAX_RECORD_PICKLE = 64 * 1024;
/** Pickle bytes analysed per file, all members together. */
const BUDGET = 512 * 1024 * 1024;
/** Budget for members that are not torch's but named or sniffed as pickles. */
const SNIFFED_MAX = 16 * 1024 * 1024;
/** How far the byte-0 (legacy fallback) stream is followed. */
const FALLBACK_MAX = 16 * 1024 * 1024;
const SNIFF = 64;
const PICKLE_NAME = /\.(pkl|pickle|pt|pth|bin|ckpt|joblib)$/i;

/** Element sizes of the storage classes `storage_type.dtype` names (torch 1.13 `_element_size`). */
const STORAGE_ELEMENT_SIZE: Readonly<Record<string, number>> = {
	DoubleStorage: 8,
	FloatStorage: 4,
	HalfStorage: 2,
	BFloat16Storage: 2,
	LongStorage: 8,
	IntStorage: 4,
	ShortStorage: 2,
	CharStorage: 1,
	ByteStorage: 1,
	BoolStorage: 1,
	ComplexDoubleStorage: 16,
	ComplexFloatStorage: 8,
	QUInt8Storage: 1,
	QInt8Storage: 1,
	QInt32Storage: 4,
	QUInt4x2Storage: 1,
	QUInt2x4Storage: 1,
};
/**
 * Legacy tensor classes torch < 0.4 recorded as each tensor's type in 'tensors'.
 * torch 1.13 imports the class and ignores it (`key, storage_id, original_tensor_type = args`):
 * inert, so not reported as off the allow-list in that one position.
 */
const LEGACY_TENSOR_TYPES = new Set(
	[
		"Double",
		"Float",
		"Half",
		"BFloat16",
		"Long",
		"Int",
		"Short",
		"Char",
		"Byte",
		"Bool",
		"ComplexDouble",
		"ComplexFloat",
	].map((t) => `${t}Tensor`),
);
const TORCH_MODULES = new Set(["torch", "torch.cuda"]);

class Walk {
	readonly findings: Finding[] = [];
	malformed: string | undefined;
	budget = BUDGET;
	records = 0;
	/** Pickles analysed (torch's and sniffed ones). */
	pickles = 0;
	constructor(
		readonly src: ByteSource,
		readonly policy: ScanPolicy,
	) {}

	/** A problem torch.load would stop at too: malformed, with a finding that says so. */
	broken(message: string, location: string): void {
		this.malformed ??= `${location}: ${message}`;
		this.findings.push({ id: "pytorch-tar-malformed", severity: "medium", message, location });
	}

	/** A place where torch may read on but this scanner cannot follow: unsafe. */
	unverifiable(message: string, location: string): void {
		this.findings.push({ id: "pytorch-tar-unverifiable", severity: "high", message, location });
	}

	/**
	 * Analyses the one pickle at `start` of `slice` (bounded by `limit` bytes), reading in
	 * growing chunks; returns the analysis and the bytes it covered.
	 */
	async onePickle(
		slice: ByteSource,
		start: number,
		limit: number,
		location: string,
		first = 256,
		mode: PersistentMode = "none",
	): Promise<{ a: PickleAnalysis; buf: Buffer }> {
		const avail = Math.min(limit, slice.size - start, this.budget);
		let want = Math.min(first, avail);
		for (;;) {
			const buf = await slice.read(start, want);
			const a = analyzePickle(buf, {
				policy: this.policy,
				location,
				baseOffset: start,
				maxPickles: 1,
				partial: buf.length < avail,
				forbiddenFinding: false,
			});
			if (!a.incomplete) {
				this.budget -= buf.length;
				// --allow-pickle: judged by the weights_only model (as legacy_load reads it with weights_only=True);
				// the analyser still gives the structure the walk needs (where the pickle ends).
				if (this.policy.allowPickle) {
					const r = checkWeightsOnly(buf, { mode, baseOffset: start });
					const j = judgeWeightsOnly(buf, r, { baseOffset: start, location });
					a.findings = j.findings;
					if (j.malformed !== undefined) a.malformed ??= j.malformed;
				}
				// Counted only if it is one: bytes that merely start like a pickle and import nothing are not.
				if (a.pickles > 0 || a.findings.length > 0) this.pickles++;
				if (buf.length >= avail && avail < slice.size - start && a.malformed?.startsWith("truncated")) {
					a.findings.push({
						id: "pickle-too-large",
						severity: "high",
						message: `pickle longer than ${avail} bytes; the rest was not checked`,
						location,
					});
				}
				return { a, buf };
			}
			want = Math.min(avail, want * 4);
		}
	}

	/** One count / record pickle of a member: analysed, then decoded for the walk. */
	async record(
		slice: ByteSource,
		pos: number,
		member: string,
		what: string,
	): Promise<{ value: PickleValue; end: number; a: PickleAnalysis } | undefined> {
		if (++this.records > MAX_RECORDS) {
			this.unverifiable(`more than ${MAX_RECORDS} records; the rest of the member was not checked`, member);
			return undefined;
		}
		if (pos >= slice.size) {
			this.broken(`${what}: member ends where torch.load reads a pickle (EOFError)`, member);
			return undefined;
		}
		const { a, buf } = await this.onePickle(slice, pos, MAX_RECORD_PICKLE, member);
		if (a.malformed !== undefined || a.pickles === 0) {
			this.findings.push(...a.findings);
			this.broken(`${what}: ${a.malformed ?? "not a pickle"}`, `${member} @ 0x${pos.toString(16)}`);
			return undefined;
		}
		const d = decodePickleValue(buf);
		if (d === undefined || pos + d.end > slice.size) {
			this.findings.push(...a.findings);
			this.unverifiable(
				`${what} is not a plain record torch.save wrote; where the next pickle starts cannot be determined`,
				`${member} @ 0x${pos.toString(16)}`,
			);
			return undefined;
		}
		return { value: d.value, end: pos + d.end, a };
	}

	/** An int64 little-endian field of raw data, or undefined (reported) past the member's end. */
	async int64(slice: ByteSource, pos: number, member: string, what: string): Promise<bigint | undefined> {
		const b = await slice.read(pos, 8);
		if (b.length < 8) {
			this.broken(`${what} runs past the member's end`, `${member} @ 0x${pos.toString(16)}`);
			return undefined;
		}
		return b.readBigInt64LE(0);
	}

	/**
	 * The member's count pickle (num_storages / num_tensors) at its start: how many records follow, and where. An
	 * int, else torch fails in range().
	 */
	async countRecord(slice: ByteSource, member: string, what: string): Promise<{ n: number; pos: number } | undefined> {
		const head = await this.record(slice, 0, member, what);
		if (!head) return undefined;
		this.findings.push(...head.a.findings);
		const v = head.value;
		if (v.t !== "int") {
			this.broken(`${what} is not an int: range() raises TypeError`, member);
			return undefined;
		}
		return { n: v.v < 0n ? 0 : v.v > BigInt(MAX_RECORDS) ? MAX_RECORDS + 1 : Number(v.v), pos: head.end };
	}

	async storages(slice: ByteSource): Promise<void> {
		const M = "storages";
		const counted = await this.countRecord(slice, M, "num_storages");
		if (!counted) return;
		const { n } = counted;
		let { pos } = counted;
		for (let i = 0; i < n; i++) {
			const r = await this.record(slice, pos, M, `storage record ${i}`);
			if (!r) return;
			this.findings.push(...r.a.findings);
			const loc = `${M} @ 0x${pos.toString(16)}`;
			const v = r.value;
			if (v.t !== "seq" || v.items.length !== 3) {
				this.broken(`storage record ${i} is not (key, location, storage_type)`, loc);
				return;
			}
			const st = v.items[2] as PickleValue;
			if (st.t !== "global") {
				this.broken(`storage record ${i}: storage_type is not a class (no .dtype)`, loc);
				return;
			}
			const size = TORCH_MODULES.has(st.module) ? STORAGE_ELEMENT_SIZE[st.name] : undefined;
			if (size === undefined) {
				this.unverifiable(
					`storage record ${i}: storage type ${st.module}.${st.name} has no known element size; the storage's length cannot be determined`,
					loc,
				);
				return;
			}
			pos = r.end;
			const count = await this.int64(slice, pos, M, `storage ${i}'s element count`);
			if (count === undefined) return;
			const bytes = count * BigInt(size);
			if (count < 0n || BigInt(pos + 8) + bytes > BigInt(slice.size)) {
				this.broken(`storage ${i} holds ${count} elements, more than the member has`, `${M} @ 0x${pos.toString(16)}`);
				return;
			}
			pos += 8 + Number(bytes);
		}
		if (pos >= slice.size) {
			this.broken("storage_views: member ends where torch.load reads a pickle (EOFError)", M);
			return;
		}
		const { a } = await this.onePickle(slice, pos, MAX_RECORD_PICKLE * 64, M);
		this.findings.push(...a.findings);
		if (a.malformed !== undefined) this.broken(`storage_views: ${a.malformed}`, `${M} @ 0x${pos.toString(16)}`);
	}

	async tensors(slice: ByteSource): Promise<void> {
		const M = "tensors";
		const counted = await this.countRecord(slice, M, "num_tensors");
		if (!counted) return;
		const { n } = counted;
		let { pos } = counted;
		for (let i = 0; i < n; i++) {
			const r = await this.record(slice, pos, M, `tensor record ${i}`);
			if (!r) return;
			const v = r.value;
			const t = v.t === "seq" && v.items.length === 3 ? v.items[2] : undefined;
			// The tensor type torch < 0.4 recorded (torch.FloatTensor, …) is imported and ignored.
			const legacyType =
				t?.t === "global" &&
				TORCH_MODULES.has(t.module) &&
				LEGACY_TENSOR_TYPES.has(t.name) &&
				r.a.globals.every((g) => g.module === t.module && g.name === t.name);
			this.findings.push(
				...(legacyType ? r.a.findings.filter((f) => f.id !== "non-allowlisted-global") : r.a.findings),
			);
			if (v.t !== "seq" || v.items.length !== 3) {
				this.broken(`tensor record ${i} is not (key, storage_id, tensor_type)`, `${M} @ 0x${pos.toString(16)}`);
				return;
			}
			pos = r.end;
			// int32 ndim, 4 skipped bytes, ndim sizes, ndim strides, the storage offset (int64 each)
			const b = await slice.read(pos, 8);
			const ndim = b.length === 8 ? b.readInt32LE(0) : -1;
			const len = 8 + 16 * ndim + 8;
			if (ndim < 0 || pos + len > slice.size) {
				this.broken(`tensor ${i}'s metadata (ndim ${ndim}) runs past the member's end`, `${M} @ 0x${pos.toString(16)}`);
				return;
			}
			pos += len;
		}
	}

	async main(slice: ByteSource): Promise<void> {
		const M = "pickle";
		if (slice.size === 0) {
			this.broken("the main object's member is empty (EOFError)", M);
			return;
		}
		const { a } = await this.onePickle(slice, 0, MAX_MEMBER_PICKLE, M, 64 * 1024, "tar");
		this.findings.push(...a.findings);
		if (a.malformed !== undefined) this.broken(a.malformed, M);
	}

	/** A member that is not torch's but is named or starts like a pickle: every pickle in it. */
	async sniffed(m: TarMember, slice: ByteSource): Promise<void> {
		const head = await slice.read(0, SNIFF);
		if (isZip(head)) {
			const r = await pytorchZipScanner.scan({
				source: slice,
				name: m.name,
				path: m.name,
				policy: this.policy,
			});
			// Its pickle-forbidden finding is the tar's own (added once for the file).
			this.findings.push(
				...r.findings
					.filter((f) => f.id !== "pickle-forbidden")
					.map((f) => ({ ...f, location: f.location ? `${m.name}/${f.location}` : m.name })),
			);
			if (r.malformed === undefined || r.findings.length > 0) this.pickles++;
			return;
		}
		// As the engine's pickle fallback: a pickle-like name counts only if an unpickler would run byte 0.
		const named = PICKLE_NAME.test(m.name) && isPickleOpcode(head[0]);
		if (!named && !startsWithProto(head) && !looksLikePickle(head)) return;
		// A loader calls pickle.load on it, maybe repeatedly: follow every pickle in a row.
		let pos = 0;
		for (let k = 0; k < 64 && pos < slice.size && this.budget > 0; k++) {
			const { a } = await this.onePickle(slice, pos, SNIFFED_MAX, m.name, 4096);
			this.findings.push(...a.findings);
			if (a.malformed !== undefined || a.pickles === 0) return;
			pos += a.end;
		}
	}
}

function memberSource(src: ByteSource, m: TarMember): ByteSource {
	return new SliceSource(src, m.dataOffset, Math.max(0, Math.min(m.size, src.size - m.dataOffset)));
}

/**
 * The legacy path torch takes when tarfile fails (or the bytes come from a
 * buffer): the file from byte 0 as a legacy pickle stream. A tar header's name field rarely parses as a pickle
 * that imports anything; one that does is a polyglot. Imports of names that
 * are not Python identifiers (`cfg/model.bin\0…` read by GLOBAL) cannot resolve
 * and are ignored; everything else is reported.
 */
async function fallbackFindings(src: ByteSource, policy: ScanPolicy): Promise<Finding[]> {
	const location = "byte 0 (read as a legacy pickle stream when tarfile fails)";
	let buf = await src.read(0, 512);
	let a: PickleAnalysis;
	for (;;) {
		a = analyzePickle(buf, {
			policy: { allowPickle: true },
			location,
			maxPickles: 5,
			partial: buf.length < Math.min(src.size, FALLBACK_MAX),
			forbiddenFinding: false,
		});
		if (!a.incomplete) break;
		buf = await src.read(0, Math.min(src.size, FALLBACK_MAX, buf.length * 4));
	}
	const ident = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
	const imports = a.globals.filter((g) => ident.test(g.module) && ident.test(g.name));
	const strong = a.findings.filter((f) => ["dangerous-global", "extension-global", "unresolved-global"].includes(f.id));
	if (imports.length === 0 && strong.length === 0) return [];
	const named = imports.map((g) => `${g.module}.${g.name}`).join(", ");
	const out: Finding[] = [
		{
			id: "pytorch-tar-polyglot",
			severity: "high",
			message: `the tar's first bytes also unpickle${named ? ` (importing ${named})` : ""}: torch.load runs them when tarfile fails on the archive or the file is loaded from a buffer`,
			location,
		},
	];
	// The details, judged under the scan's policy.
	const judged = analyzePickle(buf, { policy, location, maxPickles: 5, forbiddenFinding: false });
	return [...out, ...judged.findings];
}

async function scanTar(input: ScanInput): Promise<ScanResult> {
	const { policy } = input;
	const src = inputSource(input);
	const w = new Walk(src, policy);
	const listing = await listTar(src);
	// Not a tar: torch.load takes the legacy pickle path, which the other scanners judge.
	if (typeof listing === "string") return { findings: [], malformed: `not a tar archive: ${listing}` };
	const polyglot = await fallbackFindings(src, policy);
	const torch = ["storages", "tensors", "pickle"].map((n) => getMember(listing, n));
	// torch.save's own layout: any of its members (sys_info included, never read back) makes it
	// a checkpoint, so that a truncated one missing the others is malformed, not a plain tar.
	const isTorch = torch.some((m) => m !== undefined) || getMember(listing, "sys_info") !== undefined;
	if (isTorch) {
		const [storages, tensors, main] = torch;
		for (const [name, m, walk] of [
			["storages", storages, (s: ByteSource) => w.storages(s)],
			["tensors", tensors, (s: ByteSource) => w.tensors(s)],
			["pickle", main, (s: ByteSource) => w.main(s)],
		] as const) {
			if (!memberUsable(w, name, m)) continue;
			await walk(memberSource(src, m as TarMember));
		}
	}
	// Every other member that a loader might unpickle (earlier duplicates, sys_info, pickles in a plain tar).
	let others = 0;
	for (const m of listing.members) {
		if (torch.includes(m)) continue;
		// Links and directories hold no bytes; data past the end is tarfile's ReadError (reported below).
		if (!hasData(m.type) || m.dataOffset + m.size > src.size) continue;
		if (w.budget <= 0) {
			others++;
			continue;
		}
		const before = w.pickles;
		await w.sniffed(m, memberSource(src, m));
		if (w.pickles === before) others++;
	}
	if (listing.unsupported !== undefined)
		w.unverifiable(`the archive cannot be read further: ${listing.unsupported}`, "tar");
	if (listing.readError !== undefined) {
		w.broken(
			`tarfile fails on this archive (${listing.readError}): torch.load reads the file as a legacy pickle stream from byte 0 instead`,
			"tar",
		);
	}
	if (w.budget <= 0) w.unverifiable(`pickle members beyond ${BUDGET} bytes in all were not checked`, "tar");
	const findings = [...w.findings, ...polyglot];
	if ((isTorch || w.pickles > 0 || polyglot.length > 0) && !policy.allowPickle) {
		findings.unshift({
			id: "pickle-forbidden",
			severity: "high",
			message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
			location: isTorch ? "pickle" : "tar",
		});
	}
	if (!isTorch && others > 0) {
		findings.push({
			id: "tar-members-not-scanned",
			severity: "low",
			message: `${others} tar member(s) that are neither torch's nor pickles were not scanned; extract the archive and scan its files`,
			location: "tar",
		});
	}
	return w.malformed !== undefined ? { findings, malformed: w.malformed } : { findings };
}

/** Checks that torch can read member `name` as a plain file; reports why not. */
function memberUsable(w: Walk, name: string, m: TarMember | undefined): m is TarMember {
	if (m === undefined) {
		// Only a missing member torch reaches is the end of the load; but any missing one means the file cannot load.
		w.broken(`no member '${name}': torch.load raises KeyError`, "tar");
		return false;
	}
	if (isLink(m.type)) {
		w.unverifiable(
			`member '${name}' is a ${m.type === "2" ? "symbolic" : "hard"} link to ${JSON.stringify(m.linkname)}: torch.load reads whatever it points to`,
			name,
		);
		return false;
	}
	if (!hasData(m.type)) {
		w.broken(`member '${name}' is not a regular file (type ${JSON.stringify(m.type)})`, name);
		return false;
	}
	if (m.dataOffset + m.size > w.src.size) {
		// listTar reports the ReadError; nothing of this member is unpickled.
		return false;
	}
	return true;
}

/** Scanner for PyTorch's pre-1.0 TAR checkpoints (and other tars holding pickles). */
export const pytorchTarScanner: Scanner = {
	format: "pytorch-tar",
	detect(head) {
		// tarfile.open accepts the file iff its first header is valid: the checksum is the magic.
		return isTarHeader(head);
	},
	scan(input) {
		return guarded(() => scanTar(input));
	},
};
