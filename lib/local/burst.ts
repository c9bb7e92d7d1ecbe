/**
 * A burst: N artefacts committed at once to the local pipeline, as a training cluster that writes many checkpoints
 * together does. Half are the example checkpoint signed by a trusted key (PROMOTABLE under the burst policy's waiver),
 * half a tampered copy under the same signature (QUARANTINED by the signature stage), so a throttle turned into a
 * quarantine shows as a wrong verdict. The data is uploaded first; then every commit marker is uploaded concurrently
 * and the clock runs from there to the last recorded verdict. Used by the burst test and `npm run bench:pipeline --
 * --burst N`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { getTags } from "../aws/tagging";
import { buildManifest } from "../core/integrity/manifest";
import { ScanStatus, STATUS_TAG } from "../core/pipeline/names";
import type { DemoSigner } from "./demo-signer";
import type { LocalPipeline, VerdictStatus } from "./pipeline";

export type BurstKind = "signed" | "tampered";

export const BURST_EXPECTED: Readonly<Record<BurstKind, VerdictStatus>> = {
	signed: "PROMOTABLE",
	tampered: "QUARANTINED",
};

/** The example checkpoint's family (no ONNX export): waived, so that a correctly signed copy is promotable. */
const FAMILY = "TinyClassifier";

/** The policy the burst runs under: the signer trusted, the example family's backdoor scan waived. */
export function burstPolicy(signer: DemoSigner): unknown {
	return {
		signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
		backdoor: {
			waivers: [{ family: FAMILY, reason: "burst: the example checkpoint has no ONNX export", approvedBy: "bench" }],
		},
	};
}

export interface BurstResult {
	artefacts: number;
	/** verdicts by kind: expected status, and how many got each status */
	byKind: Record<BurstKind, { expected: VerdictStatus; count: number; got: Partial<Record<VerdictStatus, number>> }>;
	/** artefacts whose verdict is not the expected one, with its reasons */
	wrong: { marker: string; kind: BurstKind; status: VerdictStatus; reasons: string[] }[];
	/** objects still tagged SCANNING after every verdict (or untagged, or tagged other than their verdict) */
	stuck: string[];
	/** from the first marker upload to the last recorded verdict */
	lastVerdictS: number;
	/** verdicts that did not arrive within the timeout */
	missing: string[];
}

/**
 * Commits `n` artefacts at once under `prefix` and waits for every verdict. `examples` is the repository's examples/
 * directory; `signer` must be the key the pipeline's policy trusts (burstPolicy).
 */
export async function runBurst(
	pipeline: LocalPipeline,
	options: { n: number; examples: string; signer: DemoSigner; prefix?: string; timeoutMs?: number },
): Promise<BurstResult> {
	const s3 = pipeline.server.client;
	const bucket = pipeline.definition.buckets.checkpoints;
	const prefix = options.prefix ?? "burst/";
	const good = join(options.examples, "checkpoint");
	const tampered = join(options.examples, "checkpoint-tampered");
	const signature = options.signer.signManifest(await buildManifest(good, { ignorePaths: ["model.sig"] }));
	const files = (dir: string) =>
		readdirSync(dir)
			.filter((n) => n !== "model.sig")
			.map((n) => ({ name: n, body: readFileSync(join(dir, n)) }));
	const content: Record<BurstKind, { name: string; body: Buffer }[]> = {
		signed: files(good),
		tampered: files(tampered),
	};
	const artefacts = Array.from({ length: options.n }, (_, i) => {
		const kind: BurstKind = i % 2 === 0 ? "signed" : "tampered";
		const dir = `${prefix}job-${String(i).padStart(3, "0")}-${kind}/`;
		return { kind, dir, marker: `${dir}model.sig`, objects: content[kind].map((f) => `${dir}${f.name}`) };
	});
	const put = (Key: string, Body: Buffer | string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body }));

	// the checkpoints' data, a few uploads at a time (not timed: the burst is the commits)
	const uploads = artefacts.flatMap((a) => content[a.kind].map((f) => () => put(`${a.dir}${f.name}`, f.body)));
	for (let i = 0; i < uploads.length; i += 16) await Promise.all(uploads.slice(i, i + 16).map((u) => u()));

	const t0 = performance.now();
	const arrived = new Map<string, number>();
	const unsubscribe = pipeline.onVerdict((v) => {
		if (!arrived.has(v.markerKey)) arrived.set(v.markerKey, performance.now());
	});
	const verdicts = await (async () => {
		try {
			await Promise.all(artefacts.map((a) => put(a.marker, signature)));
			return await Promise.all(
				artefacts.map((a) => pipeline.waitForVerdict(a.marker, options.timeoutMs ?? 600_000).catch(() => undefined)),
			);
		} finally {
			unsubscribe();
		}
	})();
	const lastVerdictS = (Math.max(t0, ...arrived.values()) - t0) / 1000;

	const byKind = Object.fromEntries(
		(["signed", "tampered"] as const).map((k) => [
			k,
			{ expected: BURST_EXPECTED[k], count: artefacts.filter((a) => a.kind === k).length, got: {} },
		]),
	) as BurstResult["byKind"];
	const wrong: BurstResult["wrong"] = [];
	const missing: string[] = [];
	const stuck: string[] = [];
	for (const [i, a] of artefacts.entries()) {
		const v = verdicts[i];
		if (!v) {
			missing.push(a.marker);
			continue;
		}
		const got = byKind[a.kind].got;
		got[v.status] = (got[v.status] ?? 0) + 1;
		if (v.status !== BURST_EXPECTED[a.kind]) {
			wrong.push({ marker: a.marker, kind: a.kind, status: v.status, reasons: v.reasons });
		}
		// every object carries its verdict: nothing left SCANNING (unreadable) by a scan that ended
		for (const key of [...a.objects, a.marker]) {
			const status = (await getTags(s3, { bucket, key }))[STATUS_TAG];
			if (status === ScanStatus.SCANNING || status !== v.status) stuck.push(`${key}: ${status ?? "untagged"}`);
		}
	}
	return { artefacts: options.n, byKind, wrong, stuck, lastVerdictS, missing };
}
