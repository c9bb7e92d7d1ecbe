/**
 * A dataset version's manifest: each file's SHA-256, byte and record counts, and a Merkle root over the records —
 * each leaf the SHA-256 of the record as canonical JSON (RFC 8785), so the root names the records whatever their
 * file layout (the same records as JSONL or Parquet, sharded or not, give the same root), and one changed record
 * changes it. The tree is RFC 6962's (0x00 leaf and 0x01 node prefixes, split at the largest power of two), built
 * incrementally in O(log N) memory. The manifest also keeps an 8-byte prefix of every leaf, so a later scan can say
 * which records were added or removed between two versions.
 */
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

export const LINEAGE_VERSION = 1;

export interface LineageFile {
	readonly path: string;
	readonly sha256: string;
	readonly bytes: number;
	readonly records: number;
}

export interface Lineage {
	readonly version: typeof LINEAGE_VERSION;
	readonly records: number;
	/** RFC 6962 Merkle tree head over the records' canonical JSON, hex */
	readonly merkle_root: string;
	readonly files: readonly LineageFile[];
	/** base64 of the first 8 bytes of every leaf hash, in record order */
	readonly leaf_prefixes: string;
}

export interface LineageDiff {
	/** records of the new version whose content is not in the old one (0-based, new numbering) */
	readonly added: readonly number[];
	/** records of the old version whose content is not in the new one (0-based, old numbering) */
	readonly removed: readonly number[];
}

function sha256(...parts: Uint8Array[]): Buffer {
	const h = createHash("sha256");
	for (const p of parts) h.update(p);
	return h.digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** The canonical bytes of a parsed record (RFC 8785); a record that did not parse is hashed as its raw text. */
export function canonicalBytes(value: unknown): Buffer {
	return Buffer.from(canonicalize(value) ?? "null", "utf8");
}

export class LineageBuilder {
	/** perfect subtrees, largest first: [hash, leaves] */
	private readonly stack: [Buffer, number][] = [];
	private prefixes = Buffer.alloc(8 * 1024);
	private count = 0;
	private readonly files: LineageFile[] = [];

	/** Add a record's canonical bytes; returns its leaf hash. */
	addRecord(canonical: Uint8Array): Buffer {
		const leaf = sha256(LEAF, canonical);
		if ((this.count + 1) * 8 > this.prefixes.length) {
			const next = Buffer.alloc(this.prefixes.length * 2);
			this.prefixes.copy(next);
			this.prefixes = next;
		}
		leaf.copy(this.prefixes, this.count * 8, 0, 8);
		this.count++;
		let node: [Buffer, number] = [leaf, 1];
		while (this.stack.length > 0 && (this.stack[this.stack.length - 1] as [Buffer, number])[1] === node[1]) {
			const left = this.stack.pop() as [Buffer, number];
			node = [sha256(NODE, left[0], node[0]), left[1] * 2];
		}
		this.stack.push(node);
		return leaf;
	}

	addFile(file: LineageFile): void {
		this.files.push(file);
	}

	finish(): Lineage {
		let root: Buffer;
		if (this.stack.length === 0) root = sha256();
		else {
			root = (this.stack[this.stack.length - 1] as [Buffer, number])[0];
			for (let i = this.stack.length - 2; i >= 0; i--) root = sha256(NODE, (this.stack[i] as [Buffer, number])[0], root);
		}
		return {
			version: LINEAGE_VERSION,
			records: this.count,
			merkle_root: root.toString("hex"),
			files: this.files,
			leaf_prefixes: this.prefixes.subarray(0, this.count * 8).toString("base64"),
		};
	}
}

/** Records added and removed between two versions, by content (a moved record is neither). */
export function diffLineage(older: Pick<Lineage, "leaf_prefixes">, newer: Pick<Lineage, "leaf_prefixes">): LineageDiff {
	const a = Buffer.from(older.leaf_prefixes, "base64");
	const b = Buffer.from(newer.leaf_prefixes, "base64");
	const count = (buf: Buffer) => {
		const m = new Map<string, number[]>();
		for (let i = 0; i * 8 < buf.length; i++) {
			const k = buf.toString("hex", i * 8, i * 8 + 8);
			const l = m.get(k);
			if (l === undefined) m.set(k, [i]);
			else l.push(i);
		}
		return m;
	};
	const ma = count(a);
	const mb = count(b);
	const added: number[] = [];
	const removed: number[] = [];
	for (const [k, ids] of mb) added.push(...ids.slice(ma.get(k)?.length ?? 0));
	for (const [k, ids] of ma) removed.push(...ids.slice(mb.get(k)?.length ?? 0));
	return { added: added.sort((x, y) => x - y), removed: removed.sort((x, y) => x - y) };
}
