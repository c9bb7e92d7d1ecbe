/**
 * Writes the PyTorch checkpoints `npm run bench:files` scans, with no Python at bench time, exactly as torch 1.13
 * writes them (the version that made test/fixtures/pickle/benign-state-dict*.pt): a Llama-like state_dict of ~200
 * float32 tensors, pickled at protocol 2 with the same opcodes, memo and batching as Python's pickler
 * (`_rebuild_tensor_v2`, `BINPERSID` storage references, `_metadata` for every module). The zip has 64-byte aligned
 * stored entries (`FB` padding), data descriptors and real CRCs; the legacy file has the five pickles followed by
 * the raw storages.
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";

/** Protocol-2 pickler emitting what CPython's `pickle.Pickler` emits for these objects. */
class Pickler {
	private readonly parts: Buffer[] = [];
	private memoSize = 0;
	/** Objects shared by identity in the real pickle (interned strings, classes). */
	private readonly shared = new Map<string, number>();

	raw(...bytes: number[]): void {
		this.parts.push(Buffer.from(bytes));
	}
	private u32(op: number, n: number): void {
		const b = Buffer.alloc(5);
		b[0] = op;
		b.writeUInt32LE(n, 1);
		this.parts.push(b);
	}
	/** Memoizes the object on top of the stack (BINPUT / LONG_BINPUT). */
	put(key?: string): void {
		const i = this.memoSize++;
		if (i < 256) this.raw(0x71, i);
		else this.u32(0x72, i);
		if (key !== undefined) this.shared.set(key, i);
	}
	private get(i: number): void {
		if (i < 256) this.raw(0x68, i);
		else this.u32(0x6a, i);
	}
	private reuse(key: string): boolean {
		const i = this.shared.get(key);
		if (i === undefined) return false;
		this.get(i);
		return true;
	}
	proto(): void {
		this.raw(0x80, 2);
	}
	/** BINUNICODE; `interned` strings are one object in Python, pickled once then fetched from the memo. */
	str(s: string, interned = false): void {
		if (interned && this.reuse(`s:${s}`)) return;
		const body = Buffer.from(s, "utf8");
		this.u32(0x58, body.length);
		this.parts.push(body);
		this.put(interned ? `s:${s}` : undefined);
	}
	global(module: string, name: string): void {
		if (this.reuse(`g:${module}.${name}`)) return;
		this.parts.push(Buffer.from(`c${module}\n${name}\n`, "latin1"));
		this.put(`g:${module}.${name}`);
	}
	int(n: number): void {
		if (n >= 0 && n < 256) this.raw(0x4b, n);
		else if (n >= 0 && n < 65536) this.raw(0x4d, n & 0xff, n >> 8);
		else if (n >= -(2 ** 31) && n < 2 ** 31) {
			const b = Buffer.alloc(5);
			b[0] = 0x4a;
			b.writeInt32LE(n, 1);
			this.parts.push(b);
		} else {
			let v = BigInt(n);
			const out: number[] = [];
			while (v !== 0n && v !== -1n) {
				out.push(Number(v & 0xffn));
				v >>= 8n;
			}
			if (n >= 0 && ((out.at(-1) ?? 0) & 0x80) !== 0) out.push(0);
			this.raw(0x8a, out.length, ...out);
		}
	}
	/** A tuple of the items that `each` pushes: EMPTY_TUPLE, TUPLE1-3, or MARK … TUPLE; memoized. */
	tuple(n: number, each: () => void): void {
		if (n === 0) {
			this.raw(0x29);
			return;
		}
		if (n > 3) this.raw(0x28);
		each();
		this.raw(n === 1 ? 0x85 : n === 2 ? 0x86 : n === 3 ? 0x87 : 0x74);
		this.put();
	}
	/** Python's _batch_setitems / _batch_appends: MARK … SETITEMS per 1000, a lone item as SETITEM. */
	batch<T>(items: readonly T[], each: (x: T) => void, many: number, one: number): void {
		for (let i = 0; i < items.length; i += 1000) {
			const chunk = items.slice(i, i + 1000);
			if (chunk.length > 1) this.raw(0x28);
			for (const x of chunk) each(x);
			this.raw(chunk.length > 1 ? many : one);
		}
	}
	done(): Buffer {
		this.raw(0x2e);
		return Buffer.concat(this.parts);
	}
}

interface Tensor {
	name: string;
	shape: number[];
	/** Storage key: "0", "1", … in a zip; a fake address in a legacy file. */
	key: string;
}

/** A Llama-like state_dict (float32): ~200 tensors, hidden size chosen so the total is close to `bytes`. */
function model(bytes: number, legacy: boolean): { tensors: Tensor[]; modules: string[] } {
	const layers = 22;
	const params = (h: number) => {
		const i = Math.round((h * 2.75) / 32) * 32;
		const v = 16 * h;
		return 2 * v * h + layers * (4 * h * h + 3 * i * h + 2 * h) + h;
	};
	let h = 32;
	while (Math.abs(params(h + 32) * 4 - bytes) < Math.abs(params(h) * 4 - bytes)) h += 32;
	const inter = Math.round((h * 2.75) / 32) * 32;
	const vocab = 16 * h;
	const shapes: [string, number[]][] = [["model.embed_tokens.weight", [vocab, h]]];
	const modules = ["", "model", "model.embed_tokens", "model.layers"];
	for (let l = 0; l < layers; l++) {
		const p = `model.layers.${l}`;
		modules.push(p, `${p}.self_attn`);
		for (const proj of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
			shapes.push([`${p}.self_attn.${proj}.weight`, [h, h]]);
			modules.push(`${p}.self_attn.${proj}`);
		}
		modules.push(`${p}.self_attn.rotary_emb`, `${p}.mlp`);
		shapes.push([`${p}.mlp.gate_proj.weight`, [inter, h]], [`${p}.mlp.up_proj.weight`, [inter, h]]);
		shapes.push([`${p}.mlp.down_proj.weight`, [h, inter]]);
		modules.push(`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`, `${p}.mlp.down_proj`, `${p}.mlp.act_fn`);
		shapes.push([`${p}.input_layernorm.weight`, [h]], [`${p}.post_attention_layernorm.weight`, [h]]);
		modules.push(`${p}.input_layernorm`, `${p}.post_attention_layernorm`);
	}
	shapes.push(["model.norm.weight", [h]], ["lm_head.weight", [vocab, h]]);
	modules.push("model.norm", "lm_head");
	const tensors = shapes.map(([name, shape], k) => ({
		name,
		shape,
		// Legacy keys are str(storage._cdata): addresses, in no particular order relative to the tensors.
		key: legacy ? String(94_000_000_000_000 + ((k * 2654435761) % 2 ** 32) * 16) : String(k),
	}));
	return { tensors, modules };
}

const numel = (t: Tensor) => t.shape.reduce((a, b) => a * b, 1);
const byKey = (a: Tensor, b: Tensor) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The state_dict pickle: `data.pkl` of a zip, or the fourth pickle of a legacy file. */
function stateDictPickle(tensors: Tensor[], modules: string[], legacy: boolean): Buffer {
	const p = new Pickler();
	p.proto();
	p.global("collections", "OrderedDict");
	p.raw(0x29, 0x52); // EMPTY_TUPLE REDUCE
	p.put();
	const emptyOrderedDict = () => {
		p.global("collections", "OrderedDict");
		p.raw(0x29, 0x52);
		p.put();
	};
	p.batch(
		tensors,
		(t) => {
			p.str(t.name);
			p.global("torch._utils", "_rebuild_tensor_v2");
			p.tuple(6, () => {
				// persistent id: ('storage', FloatStorage, key, 'cpu', numel[, None for legacy views])
				p.tuple(legacy ? 6 : 5, () => {
					p.str("storage", true);
					p.global("torch", "FloatStorage");
					p.str(t.key);
					p.str("cpu", true);
					p.int(numel(t));
					if (legacy) p.raw(0x4e);
				});
				p.raw(0x51); // BINPERSID
				p.int(0);
				p.tuple(t.shape.length, () => {
					for (const d of t.shape) p.int(d);
				});
				const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
				p.tuple(stride.length, () => {
					for (const s of stride) p.int(s);
				});
				p.raw(0x89); // requires_grad=False
				emptyOrderedDict(); // backward_hooks
			});
			p.raw(0x52);
			p.put();
		},
		0x75,
		0x73,
	);
	// state: {'_metadata': OrderedDict(prefix -> {'version': 1})}, then BUILD
	p.raw(0x7d);
	p.put();
	p.str("_metadata");
	emptyOrderedDict();
	p.batch(
		modules,
		(m) => {
			p.str(m);
			p.raw(0x7d);
			p.put();
			p.str("version", true);
			p.int(1);
			p.raw(0x73);
		},
		0x75,
		0x73,
	);
	p.raw(0x73, 0x62); // SETITEM BUILD
	return p.done();
}

/** Writes tensor bytes: small pseudo-random float32 values, no two blocks alike. */
class Filler {
	private readonly block = Buffer.alloc(4 * 1024 * 1024);
	private n = 0;
	constructor() {
		const f = new Float32Array(this.block.buffer, this.block.byteOffset, this.block.length / 4);
		let x = 2463534242;
		for (let i = 0; i < f.length; i++) {
			x ^= x << 13;
			x ^= x >>> 17;
			x ^= x << 5;
			f[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 0.04;
		}
	}
	/** Writes `bytes` at `pos`; returns the CRC-32 of what was written. */
	write(fd: number, pos: number, bytes: number): number {
		let crc = 0;
		for (let off = 0; off < bytes; off += this.block.length) {
			this.block.writeUInt32LE((this.n++ * 2654435761) >>> 0, 64 + (this.n % 1000) * 8);
			const len = Math.min(this.block.length, bytes - off);
			const chunk = this.block.subarray(0, len);
			crc = crc32(chunk, crc);
			writeSync(fd, chunk, 0, len, pos + off);
		}
		return crc;
	}
}

/** What a writer made: tensor count, and the fewest bytes any scanner must read to see every pickle. */
export interface Written {
	tensors: number;
	minBytes: number;
}

/** A torch.save (1.13) zip: stored entries aligned to 64 bytes, data descriptors, central directory, EOCD. */
export function writeZip(path: string, bytes: number): Written {
	const { tensors, modules } = model(bytes, false);
	const pkl = stateDictPickle(tensors, modules, false);
	const fd = openSync(path, "w");
	const filler = new Filler();
	const central: Buffer[] = [];
	let minBytes = pkl.length + 22; // data.pkl, EOCD (+ the central directory, below)
	let pos = 0;
	const put = (b: Buffer) => {
		writeSync(fd, b, 0, b.length, pos);
		pos += b.length;
	};
	const entry = (name: string, size: number, body: (at: number) => number) => {
		const nameBuf = Buffer.from(name, "utf8");
		const offset = pos;
		let pad = 64 - ((offset + 30 + nameBuf.length) % 64);
		if (pad < 4) pad += 64;
		const local = Buffer.alloc(30);
		local.writeUInt32LE(0x04034b50, 0);
		local.writeUInt16LE(0x0808, 6); // data descriptor + UTF-8; crc and sizes left 0 as miniz does
		local.writeUInt16LE(nameBuf.length, 26);
		local.writeUInt16LE(pad, 28);
		const extra = Buffer.alloc(pad, "Z");
		extra.write("FB", 0, "latin1");
		extra.writeUInt16LE(pad - 4, 2);
		put(local);
		put(nameBuf);
		put(extra);
		const crc = body(pos) >>> 0;
		pos += size;
		const dd = Buffer.alloc(16);
		dd.writeUInt32LE(0x08074b50, 0);
		dd.writeUInt32LE(crc, 4);
		dd.writeUInt32LE(size, 8);
		dd.writeUInt32LE(size, 12);
		put(dd);
		const c = Buffer.alloc(46);
		c.writeUInt32LE(0x02014b50, 0);
		c.writeUInt16LE(0x0808, 8);
		c.writeUInt32LE(crc, 16);
		c.writeUInt32LE(size, 20);
		c.writeUInt32LE(size, 24);
		c.writeUInt16LE(nameBuf.length, 28);
		c.writeUInt32LE(offset, 42);
		central.push(c, nameBuf);
	};
	const small = (data: Buffer) => (at: number) => {
		writeSync(fd, data, 0, data.length, at);
		return crc32(data);
	};
	try {
		entry("archive/data.pkl", pkl.length, small(pkl));
		for (const t of [...tensors].sort(byKey)) {
			const size = numel(t) * 4;
			entry(`archive/data/${t.key}`, size, (at) => filler.write(fd, at, size));
		}
		entry("archive/version", 2, small(Buffer.from("3\n")));
		const cd = Buffer.concat(central);
		const cdOffset = pos;
		put(cd);
		minBytes += cd.length;
		const eocd = Buffer.alloc(22);
		eocd.writeUInt32LE(0x06054b50, 0);
		eocd.writeUInt16LE(central.length / 2, 8);
		eocd.writeUInt16LE(central.length / 2, 10);
		eocd.writeUInt32LE(cd.length, 12);
		eocd.writeUInt32LE(cdOffset, 16);
		put(eocd);
	} finally {
		closeSync(fd);
	}
	return { tensors: tensors.length, minBytes };
}

/** A legacy torch.save file: magic, protocol, sys_info, state_dict and storage-key pickles, then the storages. */
export function writeLegacy(path: string, bytes: number): Written {
	const { tensors, modules } = model(bytes, true);
	// The first three pickles do not depend on the object saved: taken from the real fixture.
	const fixture = readFileSync(
		fileURLToPath(new URL("../test/fixtures/pickle/benign-state-dict-legacy.pt", import.meta.url)),
	);
	const sysInfoEnd = fixture.indexOf(Buffer.from([0x80, 0x02, 0x63]), 3); // the state_dict pickle's PROTO GLOBAL
	if (sysInfoEnd !== 137) throw new Error(`unexpected legacy fixture layout (state_dict pickle at ${sysInfoEnd})`);
	const head = fixture.subarray(0, sysInfoEnd);
	const sorted = [...tensors].sort(byKey);
	const keys = new Pickler();
	keys.proto();
	keys.raw(0x5d);
	keys.put();
	keys.batch(sorted, (t) => keys.str(t.key), 0x65, 0x61);
	const fd = openSync(path, "w");
	const filler = new Filler();
	let pos = 0;
	const put = (b: Buffer) => {
		writeSync(fd, b, 0, b.length, pos);
		pos += b.length;
	};
	let minBytes = 0;
	try {
		put(head);
		put(stateDictPickle(tensors, modules, true));
		put(keys.done());
		minBytes = pos; // the five pickles
		for (const t of sorted) {
			const n = Buffer.alloc(8);
			n.writeBigInt64LE(BigInt(numel(t)));
			put(n);
			filler.write(fd, pos, numel(t) * 4);
			pos += numel(t) * 4;
		}
	} finally {
		closeSync(fd);
	}
	return { tensors: tensors.length, minBytes };
}
