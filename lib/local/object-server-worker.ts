/**
 * Worker-thread entry of the local object server: hosts s3rver and posts each
 * "Object Created" event to the thread that started it. Messages in: `close`,
 * `grant` (a job attempt's key pair; answered `granted`), `revoke` (its key; answered `revoked` once nothing made
 * with it can still land). Out: `ready` (port), `created` (event), `closed`, `error` (message).
 * Loaded through tsx (lib/local/object-server.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import { hostS3rver, type S3rverHostOptions } from "./s3rver-host";

const port = parentPort;
if (!port) throw new Error("object-server-worker must run in a worker thread");
try {
	const host = await hostS3rver(workerData as S3rverHostOptions, (event) =>
		port.postMessage({ type: "created", event }),
	);
	port.on("message", (m: { type?: string; id?: number; accessKeyId?: string; secretAccessKey?: string }) => {
		if (m.type === "grant" && m.accessKeyId && m.secretAccessKey) {
			host.grant(m.accessKeyId, m.secretAccessKey);
			port.postMessage({ type: "granted", id: m.id });
			return;
		}
		if (m.type === "revoke" && m.accessKeyId) {
			host.revoke(m.accessKeyId).then(() => port.postMessage({ type: "revoked", id: m.id }));
			return;
		}
		if (m.type !== "close") return;
		host.close().then(
			() => port.postMessage({ type: "closed" }),
			(e: Error) => port.postMessage({ type: "error", message: e.message }),
		);
	});
	port.postMessage({ type: "ready", port: host.port });
} catch (e) {
	port.postMessage({ type: "error", message: (e as Error).message });
}
