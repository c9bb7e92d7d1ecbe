/**
 * Content sniffing for pickle-bearing files: recognised by their bytes, never by
 * their extension (renaming `model.pt` to `model.safetensors` must not help).
 * This is the cheap first look used by the base-model registry; the full
 * opcode-level analysis belongs to the file-safety scanner.
 */
import { open } from "node:fs/promises";

export type PickleKind = "pickle" | "torch-zip" | "numpy-object" | undefined;

const SNIFF_BYTES = 64 * 1024;

/** Returns what kind of pickle container a file is, or undefined if it is none. */
export async function sniffPickle(path: string): Promise<PickleKind> {
	const fh = await open(path, "r");
	try {
		const buf = Buffer.alloc(SNIFF_BYTES);
		const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
		return classify(buf.subarray(0, bytesRead));
	} finally {
		await fh.close();
	}
}

export function classify(head: Buffer): PickleKind {
	// Pickle protocol 2+ starts with PROTO (0x80) and the protocol number; this is
	// also how legacy (non-zip) torch.save files start.
	if (head.length >= 2 && head[0] === 0x80 && (head[1] ?? 0) >= 2 && (head[1] ?? 0) <= 5) return "pickle";
	// torch.save zip archives hold their object graph in a pickle named data.pkl
	// (any *.pkl entry counts: the loader does not insist on the name).
	if (head.subarray(0, 4).equals(Buffer.from("PK\x03\x04", "latin1")) && head.includes(".pkl")) return "torch-zip";
	// .npy with an object dtype stores its payload as a pickle.
	if (head.subarray(0, 6).equals(Buffer.from("\x93NUMPY", "latin1"))) {
		const header = head.subarray(8, 8 + 512).toString("latin1");
		if (/'descr':\s*'\|O'/.test(header)) return "numpy-object";
	}
	return undefined;
}
