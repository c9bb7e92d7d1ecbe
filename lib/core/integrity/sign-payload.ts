/**
 * The bytes `ftguard sign` signs: the model_signing statement serialized as model_signing serializes it
 * (protobuf's `json_format.MessageToJson`, which is Python's `json.dumps(…, indent=2, ensure_ascii=True)`),
 * and the DSSE pre-authentication encoding over them.
 */
import { dsse } from "@sigstore/core";
import { FtguardError } from "../errors";
import { IN_TOTO_PAYLOAD_TYPE, type ModelSigningStatementJson, modelSigningStatement } from "./statement";
import type { Manifest } from "./types";

export type PythonJson = string | number | boolean | null | PythonJson[] | { [key: string]: PythonJson };

/** Python's json escapes with ensure_ascii: these five by name, every other byte outside ' '…'~' as \uXXXX. */
const NAMED_ESCAPES: Readonly<Record<string, string>> = {
	'"': '\\"',
	"\\": "\\\\",
	"\b": "\\b",
	"\f": "\\f",
	"\n": "\\n",
	"\r": "\\r",
	"\t": "\\t",
};

function pythonString(s: string): string {
	let out = '"';
	// UTF-16 code units: an astral character comes out as its surrogate pair, as Python writes it.
	for (let i = 0; i < s.length; i++) {
		const ch = s[i] as string;
		const c = s.charCodeAt(i);
		const named = NAMED_ESCAPES[ch];
		if (named !== undefined) out += named;
		else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, "0")}`;
		else out += ch;
	}
	return `${out}"`;
}

/**
 * A protobuf `Struct` number is a double and Python prints it as a float (`1000000000.0`). Only the
 * integer values a statement can hold are written; anything else would need Python's float repr rules.
 */
function pythonNumber(n: number): string {
	if (!Number.isSafeInteger(n)) throw new FtguardError("INTERNAL", `cannot write ${n} as model_signing does`);
	return `${n}.0`;
}

/**
 * `json.dumps(value, indent=2, ensure_ascii=True)`: two-space indent, "," at line ends, ": " after keys,
 * empty containers as `[]` / `{}`, object keys in insertion order.
 */
export function pythonJson(value: PythonJson, indent = ""): string {
	if (value === null) return "null";
	if (typeof value === "boolean") return value ? "true" : "false";
	if (typeof value === "number") return pythonNumber(value);
	if (typeof value === "string") return pythonString(value);
	const inner = `${indent}  `;
	if (Array.isArray(value)) {
		if (value.length === 0) return "[]";
		return `[\n${value.map((v) => inner + pythonJson(v, inner)).join(",\n")}\n${indent}]`;
	}
	const entries = Object.entries(value);
	if (entries.length === 0) return "{}";
	return `{\n${entries.map(([k, v]) => `${inner}${pythonString(k)}: ${pythonJson(v, inner)}`).join(",\n")}\n${indent}}`;
}

/** The DSSE payload for a statement: UTF-8 (ASCII, in fact) of its model_signing serialization. */
export function statementBytes(statement: ModelSigningStatementJson): Buffer {
	return Buffer.from(pythonJson(statement as unknown as PythonJson), "utf8");
}

/** The DSSE payload `ftguard sign` signs for a manifest. */
export function statementPayload(manifest: Manifest): Buffer {
	return statementBytes(modelSigningStatement(manifest));
}

/** DSSE v1 pre-authentication encoding of an in-toto payload: what the signature covers. */
export function inTotoPae(payload: Buffer): Buffer {
	return dsse.preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload);
}
