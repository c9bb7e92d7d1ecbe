/**
 * A strict decoder of small pickles made of plain values only (ints, strings, None, tuples, lists, globals by name,
 * the memo): what torch wrote around raw data in its pre-1.0 tar checkpoints (counts, record tuples), read for
 * their values so that the tar walk knows where the next pickle starts. It judges nothing: whether loading a
 * pickle runs code is the analyser's question (pickle.ts), always asked first.
 */

/**
 * What the decoder gives: ints (bools among them), strings, None, tuples and lists, and globals by name; with
 * `objects`, also dicts, floats, persistent ids and symbolic objects (a global's REDUCE / NEWOBJ: what would be
 * called with what — nothing is), enough to read a torch state dict whose pickle the weights_only model loaded.
 */
export type PickleValue =
	| { t: "int"; v: bigint }
	| { t: "str"; v: string }
	| { t: "none" }
	| { t: "seq"; kind: "tuple" | "list"; items: PickleValue[] }
	| { t: "global"; module: string; name: string }
	| { t: "float"; v: number }
	| { t: "dict"; entries: [PickleValue, PickleValue][] }
	| { t: "persid"; id: PickleValue }
	| {
			t: "obj";
			func: PickleValue;
			args: PickleValue;
			entries: [PickleValue, PickleValue][];
			/** the states BUILD applied to it, in order (torch's loader re-points a tensor by one: Tensor.set_) */
			state?: PickleValue[];
	  };

export interface DecodeOptions {
	/** Also decode dicts, floats, persistent ids, REDUCE / NEWOBJ / BUILD as symbolic values. @default false */
	objects?: boolean;
	/** @default 10_000 */
	maxOps?: number;
}

/**
 * Decodes the small pickles torch wrote around raw data (counts, record tuples)
 * into values, or `undefined` for anything outside that subset. `end` is where
 * the file position is after `pickle.load` (past a FRAME that outlasts STOP:
 * the C unpickler reads whole frames). Not a security analysis: values only.
 */
export function decodePickleValue(
	buf: Buffer,
	options: DecodeOptions = {},
): { value: PickleValue; end: number } | undefined {
	const objects = options.objects === true;
	let pos = 0;
	let frameEnd = 0;
	let stack: PickleValue[] = [];
	const marks: PickleValue[][] = [];
	const memo = new Map<number, PickleValue>();
	const need = (n: number) => {
		if (pos + n > buf.length) throw new Error("eof");
	};
	const line = (): string => {
		const nl = buf.indexOf(0x0a, pos);
		if (nl < 0) throw new Error("eof");
		const s = buf.toString("latin1", pos, nl);
		pos = nl + 1;
		return s;
	};
	const pop = (): PickleValue => {
		const v = stack.pop();
		if (v === undefined) throw new Error("underflow");
		return v;
	};
	const str = (n: number, enc: "utf8" | "latin1"): PickleValue => {
		need(n);
		const v = buf.toString(enc, pos, pos + n);
		pos += n;
		return { t: "str", v };
	};
	const signedLE = (b: Buffer): bigint => {
		if (b.length === 0) return 0n;
		let n = 0n;
		for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
		return (b[b.length - 1] as number) & 0x80 ? n - (1n << BigInt(8 * b.length)) : n;
	};
	/** SETITEM(S) target: a dict, or an object (OrderedDict() is a REDUCE of its class). */
	const setItems = (items: PickleValue[]): boolean => {
		const d = stack[stack.length - 1];
		if ((d?.t !== "dict" && d?.t !== "obj") || items.length % 2 !== 0) return false;
		for (let i = 0; i < items.length; i += 2) d.entries.push([items[i] as PickleValue, items[i + 1] as PickleValue]);
		return true;
	};
	/** The `objects` opcodes: true when handled, false when malformed, undefined when not one of them. */
	const objectOp = (op: number): boolean | undefined => {
		switch (op) {
			case 0x7d: // EMPTY_DICT
				stack.push({ t: "dict", entries: [] });
				return true;
			case 0x73: {
				// SETITEM
				const v = pop();
				const k = pop();
				return setItems([k, v]);
			}
			case 0x75: {
				// SETITEMS
				const items = stack;
				const prev = marks.pop();
				if (prev === undefined) return false;
				stack = prev;
				return setItems(items);
			}
			case 0x52: // REDUCE
			case 0x81: {
				// NEWOBJ
				const args = pop();
				const func = pop();
				stack.push({ t: "obj", func, args, entries: [] });
				return true;
			}
			case 0x62: {
				// BUILD: the object stays; its state is kept for the reader to judge (a tensor's must be empty)
				const state = pop();
				const inst = stack[stack.length - 1];
				if (inst === undefined) return false;
				if (inst.t === "obj") {
					inst.state ??= [];
					inst.state.push(state);
				}
				return true;
			}
			case 0x51: // BINPERSID
				stack.push({ t: "persid", id: pop() });
				return true;
			case 0x47: // BINFLOAT (big-endian)
				need(8);
				stack.push({ t: "float", v: buf.readDoubleBE(pos) });
				pos += 8;
				return true;
			default:
				return undefined;
		}
	};
	try {
		for (let ops = 0; ops < (options.maxOps ?? 10_000); ops++) {
			need(1);
			const op = buf[pos++] as number;
			if (objects) {
				const done = objectOp(op);
				if (done === false) return undefined;
				if (done) continue;
			}
			switch (op) {
				case 0x80: // PROTO
					need(1);
					if ((buf[pos++] as number) > 5) return undefined;
					break;
				case 0x95: {
					// FRAME
					need(8);
					const n = buf.readBigUInt64LE(pos);
					pos += 8;
					if (n > BigInt(buf.length)) return undefined;
					frameEnd = pos + Number(n);
					break;
				}
				case 0x2e: {
					// STOP
					const value = pop();
					if (stack.length !== 0 || marks.length !== 0) return undefined;
					return { value, end: Math.max(pos, frameEnd) };
				}
				case 0x4b: // BININT1
					need(1);
					stack.push({ t: "int", v: BigInt(buf[pos++] as number) });
					break;
				case 0x4d: // BININT2
					need(2);
					stack.push({ t: "int", v: BigInt(buf.readUInt16LE(pos)) });
					pos += 2;
					break;
				case 0x4a: // BININT
					need(4);
					stack.push({ t: "int", v: BigInt(buf.readInt32LE(pos)) });
					pos += 4;
					break;
				case 0x8a: {
					// LONG1
					need(1);
					const n = buf[pos++] as number;
					need(n);
					stack.push({ t: "int", v: signedLE(buf.subarray(pos, pos + n)) });
					pos += n;
					break;
				}
				case 0x49: {
					// INT (protocol 0): "01" / "00" are True / False
					const s = line();
					if (s === "01" || s === "00") stack.push({ t: "int", v: s === "01" ? 1n : 0n });
					else if (/^[+-]?\d+$/.test(s.trim())) stack.push({ t: "int", v: BigInt(s.trim()) });
					else return undefined;
					break;
				}
				case 0x4c: {
					// LONG (protocol 0): digits with an optional L
					const s = line().trim().replace(/L$/, "");
					if (!/^[+-]?\d+$/.test(s)) return undefined;
					stack.push({ t: "int", v: BigInt(s) });
					break;
				}
				case 0x88: // NEWTRUE (bool is an int: range(True) works)
				case 0x89: // NEWFALSE
					stack.push({ t: "int", v: op === 0x88 ? 1n : 0n });
					break;
				case 0x4e: // NONE
					stack.push({ t: "none" });
					break;
				case 0x55: // SHORT_BINSTRING (decoded with encoding='utf-8' by torch.load)
					need(1);
					stack.push(str(buf[pos++] as number, "utf8"));
					break;
				case 0x54: {
					// BINSTRING
					need(4);
					const n = buf.readInt32LE(pos);
					pos += 4;
					if (n < 0) return undefined;
					stack.push(str(n, "utf8"));
					break;
				}
				case 0x8c: // SHORT_BINUNICODE
					need(1);
					stack.push(str(buf[pos++] as number, "utf8"));
					break;
				case 0x58: {
					// BINUNICODE
					need(4);
					const n = buf.readUInt32LE(pos);
					pos += 4;
					stack.push(str(n, "utf8"));
					break;
				}
				case 0x63: {
					// GLOBAL
					const module = line();
					const name = line();
					stack.push({ t: "global", module, name });
					break;
				}
				case 0x93: {
					// STACK_GLOBAL
					const name = pop();
					const module = pop();
					if (module.t !== "str" || name.t !== "str") return undefined;
					stack.push({ t: "global", module: module.v, name: name.v });
					break;
				}
				case 0x28: // MARK
					marks.push(stack);
					stack = [];
					break;
				case 0x29: // EMPTY_TUPLE
					stack.push({ t: "seq", kind: "tuple", items: [] });
					break;
				case 0x5d: // EMPTY_LIST
					stack.push({ t: "seq", kind: "list", items: [] });
					break;
				case 0x85: // TUPLE1
				case 0x86: // TUPLE2
				case 0x87: {
					// TUPLE3
					const n = op - 0x84;
					if (stack.length < n) return undefined;
					stack.push({ t: "seq", kind: "tuple", items: stack.splice(stack.length - n, n) });
					break;
				}
				case 0x74: // TUPLE
				case 0x6c: {
					// LIST
					const items = stack;
					const prev = marks.pop();
					if (prev === undefined) return undefined;
					stack = prev;
					stack.push({ t: "seq", kind: op === 0x74 ? "tuple" : "list", items });
					break;
				}
				case 0x61: {
					// APPEND
					const v = pop();
					const l = stack[stack.length - 1];
					if (l?.t !== "seq" || l.kind !== "list") return undefined;
					l.items.push(v);
					break;
				}
				case 0x65: {
					// APPENDS
					const items = stack;
					const prev = marks.pop();
					if (prev === undefined) return undefined;
					stack = prev;
					const l = stack[stack.length - 1];
					if (l?.t !== "seq" || l.kind !== "list") return undefined;
					l.items.push(...items);
					break;
				}
				case 0x71: // BINPUT
				case 0x72: // LONG_BINPUT
				case 0x94: {
					// MEMOIZE
					let idx = memo.size;
					if (op === 0x71) {
						need(1);
						idx = buf[pos++] as number;
					} else if (op === 0x72) {
						need(4);
						idx = buf.readUInt32LE(pos);
						pos += 4;
					}
					const top = stack[stack.length - 1];
					if (top === undefined) return undefined;
					memo.set(idx, top);
					break;
				}
				case 0x70: {
					// PUT
					const top = stack[stack.length - 1];
					const s = line();
					if (top === undefined || !/^\d+$/.test(s)) return undefined;
					memo.set(Number(s), top);
					break;
				}
				case 0x68: // BINGET
				case 0x6a: // LONG_BINGET
				case 0x67: {
					// GET
					let idx: number;
					if (op === 0x68) {
						need(1);
						idx = buf[pos++] as number;
					} else if (op === 0x6a) {
						need(4);
						idx = buf.readUInt32LE(pos);
						pos += 4;
					} else {
						const s = line();
						if (!/^\d+$/.test(s)) return undefined;
						idx = Number(s);
					}
					const v = memo.get(idx);
					if (v === undefined) return undefined;
					stack.push(v);
					break;
				}
				default:
					return undefined;
			}
		}
	} catch {
		return undefined;
	}
	return undefined;
}
