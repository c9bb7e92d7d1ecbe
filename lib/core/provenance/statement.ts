/**
 * The provenance statement of a verdict: an in-toto Statement v1 whose subject is the scanned artefact (its OMS
 * root digest) and whose predicate (`https://ftguard.dev/provenance/v1`, docs/provenance.md) says what the verdict
 * rests on — exact object versions, signer, training job, base model, dataset lineage, every check's result, the
 * DP-SGD accounting, the policy's digest — so a deployment system can check a promotion instead of trusting a tag.
 * Pure: built from the verdict record the record step writes, plus what only the record step has (`extras`).
 */
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { BackdoorReport } from "../backdoor/scan";
import { FtguardError } from "../errors";
import { IN_TOTO_STATEMENT_V1 } from "../integrity/statement";
import { FILES_PLAN, type HashPlan } from "../pipeline/manifest";
import type { VerdictRecord } from "../pipeline/record";
import type { BackdoorWaiverRecord, ScanState } from "../pipeline/types";

export const PROVENANCE_PREDICATE_TYPE = "https://ftguard.dev/provenance/v1";

/** The parts of a backdoor job's report.json the predicate copies (the job's report has more: images, timings). */
export type BackdoorReportFigures = Pick<BackdoorReport, "verdict" | "suspect_classes"> & {
	detectors: Partial<BackdoorReport["detectors"]>;
};

/** The base-model gate's verdict on the model the job started from, when the record step looked it up. */
export interface BaseModelResultRecord {
	status: string;
	reasons?: readonly string[];
	notes?: readonly string[];
	/** where the gate's result was read (an object's tags, a report) */
	uri?: string;
}

/** What the predicate needs that the verdict record does not hold. */
export interface ProvenanceExtras {
	/**
	 * {@link policyDigest} of the policy the scan ran under, as the pipeline loaded it (defaults filled in): the files
	 * step records it in the state (`policyDigest`); absent when that step never ran
	 */
	policyDigest?: string;
	/** where that policy was read (FTGUARD_POLICY_URI); absent when given inline */
	policyUri?: string;
	/** how the manifest hashed the artefact (the marker's signed serialization; the record step passes it); absent: files */
	hashPlan?: HashPlan;
	/** each scanned model's backdoor report.json (parsed), by model key: its figures go into the predicate */
	backdoorReports?: Readonly<Record<string, BackdoorReportFigures>>;
	/** the base-model gate's result for `stages.training.baseModel`, when looked up */
	baseModelResult?: BaseModelResultRecord;
	/** the verdict record this statement attests: its location and the SHA-256 (hex) of its bytes */
	verdictRecord?: { uri: string; sha256?: string };
}

type Opt<T> = T | undefined;

export interface ProvenanceObject {
	key: string;
	versionId?: string;
	etag?: string;
	size: number;
	/** whether the verdict tags were written on this version */
	tagged: boolean;
	skipped?: string;
}

export interface BackdoorModelProvenance {
	modelKey: string;
	modelVersionId?: string;
	/** the scan's outcome: clean, suspect, error (the job failed or its input was refused), or not-run */
	result: "clean" | "suspect" | "error" | "not-run";
	finding?: string;
	error?: { state: string; cause: string };
	reportUri?: string;
	/** from the model's report.json, when the record step passed it */
	figures?: BackdoorFigures;
}

export interface BackdoorFigures {
	verdict: "clean" | "suspect";
	suspectClasses: number[];
	neuralCleanse?: {
		rule: string;
		anomalyIndices: Array<number | null>;
		maxAnomalyIndex: number;
		l1Norms: number[];
		flaggedClasses: number[];
	};
	/** the calibrated verdict (the default rule): the rate it was judged at and each class's p-value */
	calibrated?: {
		falseAlarmRate: number;
		pValues: number[];
		flaggedClasses: number[];
		/** outside the calibration population: its shift; the p-values are then reported only, Neural Cleanse's rule flagged */
		outsideShift?: number;
	};
	strip?: {
		boundary: number;
		frr: number;
		cleanEntropy: { mean: number; std: number; min: number; max: number };
		reversedTriggers: Array<{ cls: number; fractionBelow: number; meanEntropy: number }>;
	};
	activationClustering?: {
		decides: boolean;
		flaggedClasses: number[];
		perClass: Array<{ cls: number; n: number; minorityFraction: number; silhouette: number; flagged: boolean }>;
	};
}

export interface ProvenancePredicate {
	scanId: string;
	/** ISO 8601: when the verdict was recorded */
	recordedAt: string;
	verdict: {
		status: VerdictRecord["status"];
		reasons: string[];
		notes?: string[];
		waiver?: BackdoorWaiverRecord;
	};
	checkpoint: {
		uri: string;
		bucket: string;
		/** a key prefix ending in "/" (a model directory) or one key (a single-file artefact) */
		artefact: string;
		marker: VerdictRecord["marker"];
		/** `sha256:<hex>`: the subject's digest */
		rootDigest: string;
		serialization: HashPlan;
		files?: number;
		bytes?: number;
		manifestUri?: string;
		objects: ProvenanceObject[];
	};
	/** the checkpoint's signature as the signature step found it; absent when that step never ran */
	signer?: NonNullable<ScanState["signature"]>;
	training?: { jobId?: string; codeCommit?: string };
	baseModel?: { id: string; result?: BaseModelResultRecord };
	dataset?: { lineageRoot: string };
	checks: {
		files?: NonNullable<ScanState["files"]>;
		backdoor?: {
			required: boolean;
			family?: string;
			notScanned?: string;
			noWeights?: boolean;
			waiver?: BackdoorWaiverRecord;
			expiredWaiver?: BackdoorWaiverRecord;
			models: BackdoorModelProvenance[];
		};
		dp?: NonNullable<ScanState["dp"]>;
		/** the state that failed and why (the verdict is then QUARANTINED) */
		error?: { state: string; cause: string };
	};
	/** absent when the files step (which loads the policy) never ran */
	policy?: { digest: string; uri?: string };
	verdictRecord?: { uri: string; sha256?: string };
}

export interface ProvenanceStatement {
	_type: typeof IN_TOTO_STATEMENT_V1;
	subject: [{ name: string; digest: { sha256: string } }];
	predicateType: typeof PROVENANCE_PREDICATE_TYPE;
	predicate: ProvenancePredicate;
}

/** `{k: v}` when v is defined, else `{}`: exactOptionalPropertyTypes forbids writing undefined into an optional field. */
function some<K extends string, V>(key: K, value: Opt<V>): { [P in K]?: V } {
	return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** `sha256:<hex>` of the RFC 8785 canonical JSON of the policy: the same policy gives the same digest however it was written. */
export function policyDigest(policy: unknown): string {
	const json = canonicalize(policy);
	if (json === undefined) throw new FtguardError("USAGE", "the policy is not a JSON value");
	return `sha256:${createHash("sha256").update(json, "utf8").digest("hex")}`;
}

function figuresOf(r: BackdoorReportFigures): BackdoorFigures {
	const nc = r.detectors.neural_cleanse;
	const strip = r.detectors.strip;
	const ac = r.detectors.activation_clustering;
	return {
		verdict: r.verdict,
		suspectClasses: [...r.suspect_classes],
		...some(
			"neuralCleanse",
			nc && {
				rule: nc.rule,
				anomalyIndices: [...nc.anomaly_indices],
				maxAnomalyIndex: nc.max_anomaly_index,
				l1Norms: [...nc.l1_norms],
				flaggedClasses: [...nc.flagged_classes],
			},
		),
		...some(
			"calibrated",
			r.detectors.calibrated && {
				falseAlarmRate: r.detectors.calibrated.false_alarm_rate,
				pValues: r.detectors.calibrated.per_class.map((c) => c.p_value),
				flaggedClasses: [...r.detectors.calibrated.flagged_classes],
				...(r.detectors.calibrated.outside ? { outsideShift: r.detectors.calibrated.outside.shift } : {}),
			},
		),
		...some(
			"strip",
			strip && {
				boundary: strip.boundary,
				frr: strip.frr,
				cleanEntropy: { ...strip.clean_entropy },
				reversedTriggers: strip.reversed_triggers.map((t) => ({
					cls: t.cls,
					fractionBelow: t.fraction_below,
					meanEntropy: t.mean_entropy,
				})),
			},
		),
		...some(
			"activationClustering",
			ac && {
				decides: ac.decides,
				flaggedClasses: [...ac.flagged_classes],
				// the minority sample indices are evidence for a human (the report), not for a verifier
				perClass: ac.per_class.map((c) => ({
					cls: c.cls,
					n: c.n,
					minorityFraction: c.minority_fraction,
					silhouette: c.silhouette,
					flagged: c.flagged,
				})),
			},
		),
	};
}

function backdoorOf(
	bd: NonNullable<ScanState["backdoor"]>,
	reports: Readonly<Record<string, BackdoorReportFigures>>,
): NonNullable<ProvenancePredicate["checks"]["backdoor"]> {
	const results = bd.results ?? [];
	const models: BackdoorModelProvenance[] = (bd.models ?? []).map((m, index) => {
		const r = results.find((x) => x.index === index);
		const result: BackdoorModelProvenance["result"] =
			r === undefined ? "not-run" : r.verdict !== undefined && r.error === undefined ? r.verdict : "error";
		const report = Object.hasOwn(reports, m.modelKey) ? reports[m.modelKey] : undefined;
		return {
			modelKey: m.modelKey,
			...some("modelVersionId", m.modelVersionId === "" ? undefined : m.modelVersionId),
			result,
			...some("finding", r?.finding),
			...some("error", r?.error),
			...some("reportUri", r?.reportUri),
			...some("figures", report && figuresOf(report)),
		};
	});
	return {
		required: bd.required,
		...some("family", bd.family),
		...some("notScanned", bd.notScanned),
		...some("noWeights", bd.noWeights),
		...some("waiver", bd.waiver),
		...some("expiredWaiver", bd.expiredWaiver),
		models,
	};
}

/**
 * The in-toto statement of a verdict record. The subject is `s3://<bucket>/<artefact>` with the manifest's root
 * digest; a record without one (the manifest step never ran: always QUARANTINED) describes no bytes and gets no
 * statement (DATA_INVALID) — check `record.rootDigest` first.
 */
export function provenanceStatement(record: VerdictRecord, extras: ProvenanceExtras): ProvenanceStatement {
	const root = record.rootDigest;
	if (root === undefined || !/^sha256:[0-9a-f]{64}$/.test(root)) {
		throw new FtguardError(
			"DATA_INVALID",
			`scan ${record.scanId}: the record has no root digest (the manifest step did not run), so no provenance`,
		);
	}
	const s = record.stages;
	const training = s.training;
	const uri = `s3://${record.bucket}/${record.artefact}`;
	const trainingPart =
		training?.jobId !== undefined || training?.codeCommit !== undefined
			? { ...some("jobId", training.jobId), ...some("codeCommit", training.codeCommit) }
			: undefined;
	const predicate: ProvenancePredicate = {
		scanId: record.scanId,
		recordedAt: record.recordedAt,
		verdict: {
			status: record.status,
			reasons: [...record.reasons],
			...some("notes", record.notes && [...record.notes]),
			...some("waiver", record.waiver),
		},
		checkpoint: {
			uri,
			bucket: record.bucket,
			artefact: record.artefact,
			marker: record.marker,
			rootDigest: root,
			// always recorded: a verifier must never take the hashing from the (unverified) marker beside the bytes
			serialization: extras.hashPlan ?? FILES_PLAN,
			...some("files", s.manifest?.files),
			...some("bytes", s.manifest?.bytes),
			...some("manifestUri", s.manifest?.uri),
			objects: record.objects.map((o) => ({
				key: o.key,
				...some("versionId", o.versionId),
				...some("etag", o.etag),
				size: o.size,
				tagged: o.tagged,
				...some("skipped", o.skipped),
			})),
		},
		...some("signer", s.signature),
		...some("training", trainingPart),
		...some(
			"baseModel",
			training?.baseModel !== undefined
				? { id: training.baseModel, ...some("result", extras.baseModelResult) }
				: undefined,
		),
		...some(
			"dataset",
			training?.datasetLineageRoot !== undefined ? { lineageRoot: training.datasetLineageRoot } : undefined,
		),
		checks: {
			...some("files", s.files),
			...some("backdoor", s.backdoor && backdoorOf(s.backdoor, extras.backdoorReports ?? {})),
			...some("dp", s.dp),
			...some("error", s.error),
		},
		...some(
			"policy",
			extras.policyDigest !== undefined ? { digest: extras.policyDigest, ...some("uri", extras.policyUri) } : undefined,
		),
		...some("verdictRecord", extras.verdictRecord),
	};
	return {
		_type: IN_TOTO_STATEMENT_V1,
		subject: [{ name: uri, digest: { sha256: root.slice("sha256:".length) } }],
		predicateType: PROVENANCE_PREDICATE_TYPE,
		predicate,
	};
}

/** The DSSE payload: the statement as RFC 8785 canonical JSON, so the same verdict always signs the same bytes. */
export function provenancePayload(statement: ProvenanceStatement): Buffer {
	// a round trip drops anything JSON cannot carry (undefined fields), so the signed bytes are what a reader parses
	return Buffer.from(canonicalize(JSON.parse(JSON.stringify(statement))) as string, "utf8");
}
