/**
 * The scan pipeline's state: the one JSON document that flows through the Step
 * Functions execution (in AWS and locally). Each Lambda state reads it and
 * returns it with its own field added; a Catch adds `error`. The decide state
 * turns it into a verdict — anything not explicitly passed is QUARANTINED.
 */

export const SCAN_STATUS = ["SCANNING", "PROMOTABLE", "QUARANTINED"] as const;
export type ScanStatus = (typeof SCAN_STATUS)[number];

/** One object of the artefact being scanned, pinned to the version that was scanned. */
export interface ScanObject {
	key: string;
	/** S3 VersionId (absent on a store without versioning, e.g. the local server) */
	versionId?: string;
	/** the ETag, to bind verdicts where there is no VersionId */
	etag?: string;
	size: number;
}

export interface ScanState {
	/** deterministic id of (bucket, marker key, marker version/etag): the execution name */
	scanId: string;
	bucket: string;
	/** the commit marker whose upload started the scan (model.sig, *.sigstore.json, or a single-file artefact) */
	marker: { key: string; versionId?: string; etag?: string };
	/** the artefact: a key prefix ending in "/" (a model directory) or a single key */
	artefact: string;
	/** mark: the objects tagged SCANNING, with their versions */
	objects?: ScanObject[];
	/** manifest: OMS-compatible digests of `objects` */
	manifest?: { rootDigest: string; files: number; bytes: number; uri: string };
	/** signature: the Sigstore bundle verified against the policy's identities and the manifest */
	signature?: { verified: boolean; identity?: string; code?: string; reason?: string };
	/** files: the format scanners over every object */
	files?: { safe: boolean; unsafe: number; malformed: number; reportUri: string; reasons: string[] };
	/**
	 * backdoor: the files step's plan (scan the one ONNX model with the policy's reference data, or why no scan
	 * runs) and the batch job's outcome
	 */
	backdoor?: {
		/** a scan runs: an ONNX model and its reference data (the state machine's BackdoorRequired choice) */
		required: boolean;
		modelKey?: string;
		verdict?: "clean" | "suspect";
		reportUri?: string;
		/** files: the model's pinned VersionId (absent on a store without versioning) */
		modelVersionId?: string;
		/** files: the trusted reference data the policy names for this model (absent when none matches) */
		dataUri?: string;
		labelsUri?: string;
		dataKind?: "reference" | "training";
		/** files: the artefact's model family (config.json `model_type`, else `architectures[0]`) */
		family?: string;
		/**
		 * files, required false: why the artefact holding (or possibly holding) model weights is not scanned —
		 * "no ONNX export to scan for backdoors", "no reference data for family X", … QUARANTINED with
		 * "not scanned: <this>" unless `waiver` lets it through.
		 */
		notScanned?: string;
		/** files, required false: every file is of a format known to hold no model weights (nothing to scan) */
		noWeights?: boolean;
		/** files: the policy waiver that lets the unscanned artefact be promoted (recorded in its verdict) */
		waiver?: BackdoorWaiverRecord;
		/** files: a waiver that matched the artefact but had expired (named in the reason) */
		expiredWaiver?: BackdoorWaiverRecord;
	};
	/** set by a Catch: which state failed and why (the execution then goes to decide → QUARANTINED) */
	error?: { state: string; cause: string };
	/** decide: the verdict, its reasons (none when PROMOTABLE) and notes (what a PROMOTABLE verdict rests on, e.g. a waiver) */
	verdict?: { status: Exclude<ScanStatus, "SCANNING">; reasons: string[]; notes?: string[] };
}

/**
 * A policy waiver (lib/core/policy/backdoor.ts) as the state and the verdict record carry it; the policy-wide
 * `backdoor.required: false` is recorded as a waiver with that reason and no family or prefix.
 */
export interface BackdoorWaiverRecord {
	reason: string;
	family?: string;
	prefix?: string;
	approvedBy?: string;
	expires?: string;
}
