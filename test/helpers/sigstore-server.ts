/**
 * A private Sigstore instance (test/helpers/sign.ts `createMockSigstore`) served over HTTP on 127.0.0.1, so
 * that `@sigstore/sign` — in this process or in a spawned CLI — talks to Fulcio, Rekor and a TSA as it would
 * in production. One base URL answers all three (their API paths differ).
 *
 * The mock Rekor logs a proposed entry as it arrives; real Rekor stores a `dsse` entry in its canonical
 * form (envelope and payload hashes, signatures with their verifiers), which is what verifiers check the
 * bundle against. The server does that conversion, as Rekor's dsse type does.
 */
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fulcioHandler } from "@sigstore/mock/dist/fulcio/handler.js";
import { rekorHandler } from "@sigstore/mock/dist/rekor/handler.js";
import type { Handler } from "@sigstore/mock/dist/shared.types.js";
import { tsaHandler } from "@sigstore/mock/dist/timestamp/handler.js";
import type { MockSigstore } from "./sign";

export interface SigstoreServer {
	/** Base URL of Fulcio, Rekor and the TSA alike. */
	url: string;
	/** Requests answered, by path (to assert which services were asked). */
	hits: Record<string, number>;
	close: () => Promise<void>;
}

export async function serveMockSigstore(instance: MockSigstore): Promise<SigstoreServer> {
	const rekor = rekorHandler(instance.tlog);
	const handlers: Handler[] = [
		fulcioHandler(instance.ca),
		{ path: rekor.path, fn: (body) => rekor.fn(canonicalDsseEntry(body)) },
		tsaHandler(instance.tsa),
	];
	const hits: Record<string, number> = {};
	const server = createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			const handler = handlers.find((h) => req.method === "POST" && req.url === h.path);
			if (!handler) {
				res.writeHead(404).end("not found");
				return;
			}
			hits[handler.path] = (hits[handler.path] ?? 0) + 1;
			handler
				.fn(Buffer.concat(chunks).toString("utf8"))
				.then(({ statusCode, response, contentType }) => {
					res.writeHead(statusCode, { "Content-Type": contentType ?? "text/plain" });
					res.end(
						typeof response === "string"
							? response
							: Buffer.from(response.buffer, response.byteOffset, response.byteLength),
					);
				})
				.catch((e: unknown) => res.writeHead(500).end(String(e)));
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	return {
		url: `http://127.0.0.1:${port}`,
		hits,
		close: () => new Promise((resolve) => server.close(() => resolve())),
	};
}

/** An unsigned JWT with these claims: the mock Fulcio reads the claims without checking a signature. */
export function identityToken(claims: Record<string, unknown>): string {
	const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
	const now = Math.floor(Date.now() / 1000);
	return `${part({ alg: "none", typ: "JWT" })}.${part({ aud: "sigstore", iat: now, exp: now + 600, ...claims })}.`;
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** Rekor's canonical body of a proposed `dsse` 0.0.1 entry; any other entry passes unchanged. */
function canonicalDsseEntry(body: string): string {
	const entry = JSON.parse(body) as {
		kind?: string;
		apiVersion?: string;
		spec?: { proposedContent?: { envelope: string; verifiers: string[] } };
	};
	const proposed = entry.spec?.proposedContent;
	if (entry.kind !== "dsse" || proposed === undefined) return body;
	const envelope = JSON.parse(proposed.envelope) as { payload: string; signatures: { sig: string }[] };
	return JSON.stringify({
		apiVersion: entry.apiVersion,
		kind: "dsse",
		spec: {
			envelopeHash: { algorithm: "sha256", value: sha256(proposed.envelope) },
			payloadHash: { algorithm: "sha256", value: sha256(Buffer.from(envelope.payload, "base64")) },
			signatures: envelope.signatures.map((s, i) => ({ signature: s.sig, verifier: proposed.verifiers[i] })),
		},
	});
}
