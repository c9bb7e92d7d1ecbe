/**
 * Compressed streams that loaders open transparently: joblib.load recognises zlib, gzip, bz2, xz, lzma and lz4 by
 * their first bytes and unpickles what comes out; tarfile.open (torch.load's first try, SageMaker's model.tar.gz)
 * reads gzip, bz2 and xz tars. The engine decompresses them here — bounded, never trusting a size field — and scans
 * what comes out as a file of its own.
 *
 * What a loader reads before a stream breaks is what it acts on (pickle runs opcode by opcode), so a stream that
 * fails part way yields the bytes decoded until then, with the error.
 */
import { crc32, createGunzip, createInflate } from "node:zlib";
import Bunzip from "seek-bzip";
import * as xzModule from "xz-decompress";
import { decodeLzmaAlone, LzmaError, LzmaOverLimit } from "./lzma";
import { isTarHeader } from "./tar";
import type { ByteSource } from "./types";

// xz-decompress is CommonJS with an __esModule flag: Node's ESM loader puts its exports under `default`, bundlers
// (and vitest) at the top level.
type XzStreamClass = new (s: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>;
const xzExports = xzModule as unknown as {
	XzReadableStream?: XzStreamClass;
	default?: { XzReadableStream?: XzStreamClass };
};
const XzReadableStream = (xzExports.XzReadableStream ?? xzExports.default?.XzReadableStream) as XzStreamClass;

/** `zfile`: joblib's pre-0.10 format, "ZF" + the length in hex + one zlib stream (joblib.load still reads it). */
export type Codec = "gzip" | "zlib" | "bz2" | "xz" | "lzma" | "lz4" | "zfile";

/**
 * The codec a loader would decompress `head` with, as joblib's `_detect_compressor` and tarfile's transparent mode
 * (`tarfile.open(path)`, how SageMaker opens model.tar.gz) test them: joblib knows `.lzma` only by `]\0\0`, but
 * tarfile hands a file named like a tar to lzma.LZMAFile, which takes any .lzma header liblzma accepts.
 */
export function codecOf(head: Buffer, name = ""): Codec | undefined {
	if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
	if (head.subarray(0, 3).toString("latin1") === "BZh") return "bz2";
	if (head.subarray(0, 6).equals(XZ_MAGIC)) return "xz";
	if (head[0] === 0x5d && head[1] === 0x00 && head[2] === 0x00) return "lzma";
	if (head.subarray(0, 4).equals(LZ4_MAGIC)) return "lz4";
	if (head[0] === 0x5a && head[1] === 0x46) return "zfile"; // "ZF"
	// joblib tests only the first byte b"x" for zlib: a text file starting with "x" is tried, fails, and is not a stream
	if (head[0] === 0x78) return "zlib";
	// tarfile's transparent mode tries a plain tar first: a valid tar header is read as a tar, never as .lzma
	if (TAR_NAME.test(name) && isLzmaAlone(head) && !isTarHeader(head)) return "lzma";
	return undefined;
}

const TAR_NAME = /\.(tar(\.[^./]+)?|tgz|tbz2?|txz|tlz|tlzma)$/i;

/** An .lzma ("alone") header liblzma accepts (lc + lp ≤ 4, pb ≤ 4) whose range coder starts with its 0 byte. */
function isLzmaAlone(head: Buffer): boolean {
	if (head.length < 14 || head[13] !== 0) return false;
	const p = head[0] as number;
	if (p >= 9 * 5 * 5) return false;
	return (p % 9) + (((p / 9) | 0) % 5) <= 4;
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const LZ4_MAGIC = Buffer.from([0x04, 0x22, 0x4d, 0x18]);

export interface InflateLimits {
	/** Most decompressed bytes kept for one stream; more is "cannot check", never a pass. */
	maxBytes: number;
	/** Largest compressed input read whole (the bz2, xz and lzma decoders here take a buffer). */
	maxInput: number;
}

export const DEFAULT_INFLATE_LIMITS: InflateLimits = {
	maxBytes: 256 * 1024 * 1024,
	maxInput: 1024 * 1024 * 1024,
};

export type Inflated =
	/** decoded bytes; `error` when the stream broke after them (the loader saw these bytes, then failed) */
	| { kind: "data"; data: Buffer; error?: string }
	/** not a stream of this codec after all (failed before producing a byte): loaders fail on it too */
	| { kind: "not-stream"; error: string }
	/** could not be checked within the limits, or by this build: not safe */
	| { kind: "refused"; reason: string };

class OverLimit extends Error {}

/** Collects output up to a limit; throws OverLimit past it (a compression bomb stops here, not in memory). */
class Sink {
	private chunks: Buffer[] = [];
	private cur = Buffer.allocUnsafe(64 * 1024);
	private pos = 0;
	length = 0;
	constructor(private readonly max: number) {}
	push(b: Buffer): void {
		if (this.length + b.length > this.max) throw new OverLimit();
		this.flush();
		this.chunks.push(b);
		this.length += b.length;
	}
	writeByte(x: number): void {
		if (this.length >= this.max) throw new OverLimit();
		if (this.pos === this.cur.length) this.flush();
		this.cur[this.pos++] = x;
		this.length++;
	}
	private flush(): void {
		if (this.pos === 0) return;
		this.chunks.push(Buffer.from(this.cur.subarray(0, this.pos)));
		this.cur = Buffer.allocUnsafe(64 * 1024);
		this.pos = 0;
	}
	data(): Buffer {
		this.flush();
		return Buffer.concat(this.chunks, this.length);
	}
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n", 1)[0] ?? "error";

function settle(sink: Sink, error: unknown, limits: InflateLimits, codec: Codec): Inflated {
	if (error instanceof OverLimit)
		return { kind: "refused", reason: `${codec} stream decompresses to more than ${limits.maxBytes} bytes` };
	if (error === undefined) return { kind: "data", data: sink.data() };
	if (sink.length === 0) return { kind: "not-stream", error: message(error) };
	return { kind: "data", data: sink.data(), error: message(error) };
}

/** Decompresses `src` as `codec`, within `limits`. Never throws for bad input. */
export async function inflate(src: ByteSource, codec: Codec, limits: InflateLimits): Promise<Inflated> {
	if (codec === "lz4")
		return { kind: "refused", reason: "lz4 stream (joblib decompresses and unpickles it): no lz4 decoder here" };
	if (src.size > limits.maxInput)
		return {
			kind: "refused",
			reason: `${codec} stream of ${src.size} bytes is over the ${limits.maxInput}-byte limit`,
		};
	const sink = new Sink(limits.maxBytes);
	if (codec === "gzip" || codec === "zlib") return settle(sink, await inflateZlib(src, codec, sink), limits, codec);
	if (codec === "zfile") {
		// read_zfile: 2 + 19 header bytes, one optional space, then zlib.decompress of the rest
		const start = (await src.read(ZFILE_HEADER, 1))[0] === 0x20 ? ZFILE_HEADER + 1 : ZFILE_HEADER;
		return settle(sink, await inflateZlib(src, "zlib", sink, start), limits, codec);
	}
	const input = await src.read(0, src.size);
	if (codec === "bz2") {
		try {
			// multistream, as Python's bz2 module reads concatenated streams
			Bunzip.decode(input, sink, true);
			return settle(sink, undefined, limits, codec);
		} catch (e) {
			return settle(sink, e, limits, codec);
		}
	}
	// Python's lzma module (FORMAT_AUTO, as joblib opens both) reads concatenated .xz / .lzma streams one after the
	// other and ignores trailing bytes that are not a stream: so does this loop.
	let at = 0;
	let error: unknown;
	while (at < input.length && error === undefined) {
		const rest = input.subarray(at);
		const kind = rest.subarray(0, 6).equals(XZ_MAGIC) ? "xz" : "lzma";
		const before = sink.length;
		const r = kind === "xz" ? await inflateXz(rest, sink) : inflateLzma(rest, sink, limits);
		if (r.error instanceof OverLimit) return settle(sink, r.error, limits, codec);
		// the xz decoder reports neither where a stream ended nor what it decoded before failing, so an xz stream
		// followed by something Python would still read (another .lzma stream) cannot be shown harmless
		if (kind === "xz" && r.error !== undefined)
			return { kind: "refused", reason: `xz stream could not be decoded to its end: ${message(r.error)}` };
		if (r.error !== undefined) {
			// a first stream that breaks is the loader's error; a later one that yields nothing is trailing data
			if (at === 0 || sink.length > before) error = r.error;
			break;
		}
		if (r.end === undefined) break;
		at += r.end;
	}
	return settle(sink, error, limits, codec);
}

interface Decoded {
	error?: unknown;
	/** bytes of input the stream took, when known */
	end?: number;
}

function inflateLzma(input: Buffer, sink: Sink, limits: InflateLimits): Decoded {
	try {
		const r = decodeLzmaAlone(input, 0, limits.maxBytes - sink.length);
		sink.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length));
		return r.error === undefined ? { end: r.end } : { error: new Error(r.error) };
	} catch (e) {
		if (e instanceof LzmaOverLimit) return { error: new OverLimit() };
		return { error: e instanceof LzmaError ? e : new Error(message(e)) };
	}
}

/** Streams through node:zlib so a bomb is stopped at the limit; resolves with the error, if any. */
const ZFILE_HEADER = 2 + 19;

async function inflateZlib(src: ByteSource, codec: "gzip" | "zlib", sink: Sink, start = 0): Promise<unknown> {
	const z = codec === "gzip" ? createGunzip() : createInflate();
	const done = new Promise<unknown>((resolve) => {
		z.on("data", (b: Buffer) => {
			try {
				sink.push(b);
			} catch (e) {
				z.destroy();
				resolve(e);
			}
		});
		z.on("error", (e) => resolve(e));
		z.on("end", () => resolve(undefined));
	});
	// a small first read: most files whose first byte looks like zlib ("x") fail in their first bytes
	for (let off = start, chunk = 64 * 1024; off < src.size && !z.destroyed; off += chunk, chunk = 1024 * 1024) {
		let b = await src.read(off, Math.min(chunk, src.size - off));
		if (codec === "gzip" && off === start) b = withHeaderCrc(b);
		if (!z.write(b)) await new Promise<void>((r) => z.once("drain", r).once("close", r));
	}
	if (!z.destroyed) z.end();
	return done;
}

/**
 * Python's gzip skips a member header's CRC16 (FHCRC) unchecked; zlib rejects a wrong one. The first member's header
 * gets its right CRC, so what Python decompresses is decompressed here too.
 */
function withHeaderCrc(b: Buffer): Buffer {
	const flags = b[3] ?? 0;
	if (b.length < 12 || (flags & 0x02) === 0) return b;
	let p = 10;
	if (flags & 0x04) p += 2 + (b[10] ?? 0) + ((b[11] ?? 0) << 8); // FEXTRA
	for (const bit of [0x08, 0x10]) {
		// FNAME, FCOMMENT: zero-terminated
		if ((flags & bit) === 0) continue;
		const nul = b.indexOf(0, p);
		if (nul < 0) return b;
		p = nul + 1;
	}
	if (p + 2 > b.length) return b;
	const out = Buffer.from(b);
	out.writeUInt16LE(crc32(out.subarray(0, p)) & 0xffff, p);
	return out;
}

async function inflateXz(input: Buffer, sink: Sink): Promise<Decoded> {
	try {
		const stream = new XzReadableStream(
			new ReadableStream<Uint8Array>({
				start(c) {
					c.enqueue(new Uint8Array(input.buffer, input.byteOffset, input.length));
					c.close();
				},
			}),
		);
		const reader = stream.getReader();
		for (;;) {
			const { done, value } = await reader.read();
			if (done) return {};
			try {
				sink.push(Buffer.from(value));
			} catch (e) {
				await reader.cancel().catch(() => undefined);
				return { error: e };
			}
		}
	} catch (e) {
		return { error: e };
	}
}
