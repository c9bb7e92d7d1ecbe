/**
 * model_signing before 1.0 (v0.2) signed a different pre-authentication
 * encoding than DSSE's. Key and certificate modes retry a failed signature
 * with it exactly where the reference verifier does; this module rebuilds
 * that encoding and names the retry rules.
 */
import { IN_TOTO_PAYLOAD_TYPE } from "./statement";

/**
 * Python's `repr()` of a `bytes` value, byte for byte (CPython's `bytes_repr`):
 * `b'…'`, or `b"…"` when the bytes hold a `'` and no `"`; backslash, the quote,
 * tab, newline and carriage return escaped; other bytes outside 0x20–0x7e as
 * `\xhh` in lower case. The result is ASCII.
 */
export function pythonBytesRepr(data: Uint8Array): Buffer {
	const SQ = 0x27;
	const DQ = 0x22;
	const BS = 0x5c;
	const hex = "0123456789abcdef";
	const quote = data.includes(SQ) && !data.includes(DQ) ? DQ : SQ;
	const out = Buffer.allocUnsafe(data.length * 4 + 3);
	let n = 0;
	out[n++] = 0x62; // b
	out[n++] = quote;
	for (const c of data) {
		if (c === quote || c === BS) {
			out[n++] = BS;
			out[n++] = c;
		} else if (c === 0x09 || c === 0x0a || c === 0x0d) {
			out[n++] = BS;
			out[n++] = c === 0x09 ? 0x74 : c === 0x0a ? 0x6e : 0x72; // t n r
		} else if (c < 0x20 || c >= 0x7f) {
			out[n++] = BS;
			out[n++] = 0x78; // x
			out[n++] = hex.charCodeAt(c >> 4);
			out[n++] = hex.charCodeAt(c & 0xf);
		} else {
			out[n++] = c;
		}
	}
	out[n++] = quote;
	return out.subarray(0, n);
}

/**
 * The pre-authentication encoding model_signing v0.2 signed: the payload bytes
 * formatted into a Python string, so "DSSEV1 28 application/vnd.in-toto+json
 * <length> b'{\n  \"_type\"…'" in UTF-8 (capital V, the payload as its repr,
 * its length that of the raw bytes). The reference verifier (`pae_compat` in
 * model_signing 1.0.1+, `_signing/sign_sigstore_pb.py`) rebuilds exactly this,
 * always with the in-toto payload type.
 *
 * It cannot be confused with the DSSE encoding: the two differ at byte 5
 * ("DSSEv1" / "DSSEV1"), so no signature is valid under both.
 */
export function legacyPreAuthEncoding(payload: Uint8Array): Buffer {
	return Buffer.concat([
		Buffer.from(`DSSEV1 ${IN_TOTO_PAYLOAD_TYPE.length} ${IN_TOTO_PAYLOAD_TYPE} ${payload.length} `, "ascii"),
		pythonBytesRepr(payload),
	]);
}

/**
 * When a DSSE signature that fails over the DSSE encoding is tried again over
 * model_signing v0.2's encoding, and with which digest — the reference
 * verifier's rule, no wider:
 * - "curve": EC key mode (`sign_ec_key.py`), the digest that matches the curve;
 * - "sha256": certificate mode (`sign_certificate.py`), SHA-256 whatever the
 *   curve, because v0.2 hard-coded it;
 * - keyless has no retry (sigstore-python's `verify_dsse` has none).
 */
export type LegacyRetry = "curve" | "sha256";
