/**
 * base-model: EventBridge "Object Created" on the base-model bucket → the base-model gate. A marker
 * `<dir>/ftguard-base-model.json` (`{"id": "org/name@rev"}`, written last) has every object under `<dir>/` checked
 * against the signed registry the policy names (lib/aws/base-model.ts, rules in lib/core/pipeline/base-model.ts),
 * each pinned version tagged `ftguard:status=PROMOTABLE|QUARANTINED`, and `base_model_verification_result` emitted
 * (1 pass, 0 fail). Fails closed: any error quarantines what it can, emits 0 and is rethrown.
 */
import { checkModel, loadRegistry, markerId } from "../lib/aws/base-model";
import { pinInput, quarantineWhatever, tagInput } from "../lib/aws/input-gate";
import { emitEmfDocument } from "../lib/aws/metrics";
import { loadPolicy, rangedReadOptions, runHandler, s3Client } from "../lib/aws/runtime";
import { toFtguardError } from "../lib/core/errors";
import { scanIdOf } from "../lib/core/pipeline/artefact";
import { baseModelDirOf, baseModelMetricDocument, UNKNOWN_MODEL_ID } from "../lib/core/pipeline/base-model";
import type { GateTarget } from "../lib/core/pipeline/input-gate";
import type { ScanStatus } from "../lib/core/pipeline/names";
import { objectCreated } from "../lib/core/pipeline/start";
import type { ScanObject } from "../lib/core/pipeline/types";

export type BaseModelGateOutput =
	| { checked: false; reason: "not-a-marker" }
	| {
			checked: true;
			checkId: string;
			modelId: string;
			status: ScanStatus;
			reasons: string[];
			notes: string[];
			changed: string[];
	  };

export async function handler(event: unknown): Promise<BaseModelGateOutput> {
	return runHandler("base-model", undefined, async (log) => {
		const { bucket: b, object } = objectCreated(event);
		const bucket = b.name;
		const dir = baseModelDirOf(object.key);
		if (!dir) return { checked: false, reason: "not-a-marker" };
		const version = {
			...(object["version-id"] ? { versionId: object["version-id"] } : {}),
			...(object.etag ? { etag: object.etag } : {}),
		};
		const target: GateTarget = {
			bucket,
			artefact: dir,
			marker: { key: object.key, ...version },
			checkId: scanIdOf(bucket, object.key, {
				...version,
				...(object.sequencer !== undefined ? { sequencer: object.sequencer } : {}),
			}),
		};
		log.appendKeys({ scanId: target.checkId });
		const s3 = s3Client();
		let modelId = UNKNOWN_MODEL_ID;
		let objects: ScanObject[] | undefined;
		try {
			objects = await pinInput(s3, target);
			modelId = await markerId(s3, target, objects);
			const policy = await loadPolicy();
			const registry = await loadRegistry(s3, policy);
			const result = await checkModel(s3, target, objects, modelId, registry, policy, rangedReadOptions());
			const tagged = await tagInput(s3, target, objects, result.status);
			const reasons = tagged.changed.length
				? [...result.reasons, ...tagged.changed.map((k) => `changed during check: ${k}`)]
				: result.reasons;
			const pass = tagged.status === "PROMOTABLE";
			emitEmfDocument(baseModelMetricDocument(modelId, pass));
			const out = { checked: true as const, checkId: target.checkId, modelId, status: tagged.status, reasons };
			if (pass) log.info("base model passed", { ...out, notes: result.notes, files: result.files });
			else log.warn("base model quarantined", { ...out, notes: result.notes, files: result.files });
			return { ...out, notes: result.notes, changed: tagged.changed };
		} catch (e) {
			const quarantined = await quarantineWhatever(s3, target, objects);
			emitEmfDocument(baseModelMetricDocument(modelId, false));
			log.error("base-model check failed: quarantined", { modelId, quarantined, code: toFtguardError(e).code });
			throw e;
		}
	});
}
