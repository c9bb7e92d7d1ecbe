/**
 * The scan pipeline's state: the one JSON document that flows through the Step
 * Functions execution (in AWS and locally). Each Lambda state reads it and
 * returns it with its own field added; a Catch adds `error`. The decide state
 * turns it into a verdict — anything not explicitly passed is QUARANTINED.
 *
 * The types are those of the zod schemas in ./schema.ts (which document each
 * field), so that what a handler parses and what the code expects are one thing.
 */
import type { z } from "zod";
import type {
	backdoorModelSchema,
	backdoorResultSchema,
	scanObjectSchema,
	scanStateSchema,
	waiverSchema,
} from "./schema";

/** One object of the artefact being scanned, pinned to the version that was scanned. */
export type ScanObject = z.infer<typeof scanObjectSchema>;

/** The state document; unknown fields pass through (the state machine may carry its own). */
export type ScanState = z.infer<typeof scanStateSchema>;

/** A state in which the fields `K` are present (an earlier state added them; requireFields checks it). */
export type ScanStateWith<K extends keyof ScanState> = ScanState & { [P in K]-?: Exclude<ScanState[P], undefined> };

/**
 * A policy waiver (lib/core/policy/backdoor.ts) as the state and the verdict record carry it; the policy-wide
 * `backdoor.required: false` is recorded as a waiver with that reason and no family or prefix.
 */
export type BackdoorWaiverRecord = z.infer<typeof waiverSchema>;

/** One model of the backdoor plan (the backdoor job's inputs) and one outcome of the Map state that scans it. */
export type BackdoorModel = z.infer<typeof backdoorModelSchema>;
export type BackdoorResult = z.infer<typeof backdoorResultSchema>;
