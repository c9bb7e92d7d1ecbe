/**
 * The DP-SGD promotion gate (docs/dp.md "The promotion gate"): a checkpoint's declared DP-SGD run is re-accounted
 * with ftguard's RDP accountant, a claim below that figure is refused, and the policy's limits for the checkpoint's
 * family are applied to ftguard's figure — never to the claim. Pure: the caller reads the declaration.
 */
import type { DpLimits } from "../policy/dp";
import type { DpSgdDeclaration } from "../training/metadata";
import { dpRunProblem, dpSgdEpsilon, stepsForEpochs } from "./rdp";

/**
 * How far below ftguard's ε an RDP claim may be and still count as the same figure: a claim printed to two
 * decimals (2.59 for 2.597) is not a lie, one 0.02 lower is. Relative 0.1% on top for large ε.
 */
const CLAIM_TOLERANCE_ABS = 0.01;
const CLAIM_TOLERANCE_REL = 1e-3;
/**
 * PRV and GDP claims may sit below the RDP bound (RDP's conversion to (ε, δ) is loose; PRV is nearly exact, GDP an
 * approximation): typically by 10–30% in DP-SGD regimes. One under half of it is not a tighter analysis of this run.
 */
const PLAUSIBLE_SHARE_OF_RDP = 0.5;
/** Batch / dataset size must give the declared rate to this relative precision (a rate printed to 5 digits). */
const RATE_TOLERANCE_REL = 1e-4;

/** What the gate found, as the pipeline state and the verdict record carry it. */
// a type, not an interface: the pipeline state's loose zod object needs an index signature
export type DpOutcome = {
	/** the artefact declares a DP-SGD run */
	declared: boolean;
	/** the limits that applied (policy `dp`, the families' entries) */
	required: boolean;
	maxEpsilon?: number | undefined;
	maxDelta: number;
	families: string[];
	/** ftguard's ε at the run's δ (RDP, Balle et al. 2020 conversion) and its order; absent when not computable */
	epsilon?: number | undefined;
	order?: number | undefined;
	delta?: number | undefined;
	/** the run as accounted: the larger of the declared steps and ⌈epochs / q⌉, and q */
	steps?: number | undefined;
	sampleRate?: number | undefined;
	noiseMultiplier?: number | undefined;
	/** the job's own figure and accountant */
	claimedEpsilon?: number | undefined;
	accountant?: string | undefined;
	/** one line each: every problem quarantines (decide: "dp: …") */
	problems: string[];
	/** what a reader of a passing verdict should know (a PRV claim below the RDP bound, steps vs epochs) */
	notes: string[];
};

const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x));

/** The declared sampling rate, or why it cannot be trusted. */
function rateOf(dp: DpSgdDeclaration): { q: number } | { problem: string } {
	const fromSizes =
		dp.batchSize !== undefined && dp.datasetSize !== undefined ? dp.batchSize / dp.datasetSize : undefined;
	if (dp.sampleRate === undefined) return { q: fromSizes as number };
	if (fromSizes !== undefined && Math.abs(dp.sampleRate - fromSizes) > RATE_TOLERANCE_REL * fromSizes) {
		return {
			problem: `the sampling rate ${dp.sampleRate} is not batch size / dataset size (${dp.batchSize} / ${dp.datasetSize} = ${fmt(fromSizes)})`,
		};
	}
	// the larger of the two: a rate rounded down beside its sizes must not lower ε
	return { q: Math.max(dp.sampleRate, fromSizes ?? 0) };
}

/**
 * Judges a declaration (undefined: the artefact declares no DP-SGD run) against the limits that apply to it.
 * `declarationProblem` is why the declaration could not be read (a malformed ftguard-training.json): a problem
 * whatever the policy, since the artefact carries a claim nobody can check.
 */
export function dpGate(dp: DpSgdDeclaration | undefined, limits: DpLimits, declarationProblem?: string): DpOutcome {
	const base = {
		required: limits.required,
		maxEpsilon: limits.maxEpsilon,
		maxDelta: limits.maxDelta,
		families: limits.families,
	};
	const problems: string[] = [];
	const notes: string[] = [];
	const forFamilies = limits.families.length > 0 ? ` for family ${limits.families.join(", ")}` : "";
	if (declarationProblem !== undefined) problems.push(`training metadata: ${declarationProblem}`);
	if (dp === undefined) {
		if (limits.required && declarationProblem === undefined)
			problems.push(`DP-SGD training is required${forFamilies} but the artefact declares none`);
		return { declared: false, ...base, problems, notes };
	}
	const rate = rateOf(dp);
	const declared = {
		delta: dp.delta,
		noiseMultiplier: dp.noiseMultiplier,
		...(dp.epsilon !== undefined ? { claimedEpsilon: dp.epsilon } : {}),
		accountant: dp.accountant,
	};
	if ("problem" in rate) {
		problems.push(rate.problem);
		return { declared: true, ...base, ...declared, problems, notes };
	}
	const { q } = rate;
	const fromEpochs = dp.epochs !== undefined ? stepsForEpochs(dp.epochs, q) : undefined;
	const steps = Math.max(dp.steps ?? 0, fromEpochs ?? 0);
	if (dp.steps !== undefined && fromEpochs !== undefined && Math.abs(dp.steps - fromEpochs) > 1)
		notes.push(
			`${dp.steps} steps declared, ${dp.epochs} epochs at rate ${fmt(q)} are ${fromEpochs}: ${steps} accounted`,
		);
	const run = { noiseMultiplier: dp.noiseMultiplier, sampleRate: q, steps, delta: dp.delta };
	const invalid = dpRunProblem(run);
	if (invalid !== undefined) {
		problems.push(invalid);
		return { declared: true, ...base, ...declared, problems, notes };
	}
	let accounted: { epsilon: number; order: number };
	try {
		accounted = dpSgdEpsilon(run);
	} catch (e) {
		// a numerical failure of the accountant at extreme parameters: not a number to gate on
		problems.push(`the run could not be accounted (${(e as Error).message})`);
		return { declared: true, ...base, ...declared, steps, sampleRate: q, problems, notes };
	}
	const { epsilon, order } = accounted;
	if (!Number.isFinite(epsilon)) {
		// σ so small (or so many steps) that no order bounds the loss: a DP claim that protects nothing
		problems.push(`ε is unbounded at these parameters (σ ${dp.noiseMultiplier}, q ${fmt(q)}, ${steps} steps)`);
		return { declared: true, ...base, ...declared, steps, sampleRate: q, problems, notes };
	}
	const figures = { epsilon, order, steps, sampleRate: q };
	if (dp.delta > limits.maxDelta)
		problems.push(`δ ${dp.delta} is above the policy's maxDelta ${limits.maxDelta}${forFamilies}`);
	if (dp.datasetSize !== undefined && dp.delta >= 1 / dp.datasetSize)
		problems.push(
			`δ ${dp.delta} is not below 1 / dataset size (${fmt(1 / dp.datasetSize)}): ε at such δ protects no one`,
		);
	if (dp.epsilon !== undefined) {
		const below = epsilon - dp.epsilon;
		if (dp.accountant === "rdp" && below > Math.max(CLAIM_TOLERANCE_ABS, CLAIM_TOLERANCE_REL * epsilon)) {
			problems.push(
				`the claimed ε ${dp.epsilon} understates the run: ftguard's RDP accountant gives ε ${fmt(epsilon)} at δ ${dp.delta}`,
			);
		} else if (dp.accountant !== "rdp" && dp.epsilon < PLAUSIBLE_SHARE_OF_RDP * epsilon) {
			problems.push(
				`the claimed ε ${dp.epsilon} (${dp.accountant} accountant) is under half ftguard's RDP bound ${fmt(epsilon)} at δ ${dp.delta}: no accountant is that much tighter`,
			);
		} else if (dp.accountant !== "rdp" && below > 0) {
			notes.push(
				`claimed ε ${dp.epsilon} (${dp.accountant} accountant) is below ftguard's RDP bound ${fmt(epsilon)}: the policy is applied to ${fmt(epsilon)}`,
			);
		}
	}
	if (limits.maxEpsilon !== undefined && !(epsilon <= limits.maxEpsilon))
		problems.push(
			`ε ${fmt(epsilon)} at δ ${dp.delta} is above the policy's maxEpsilon ${limits.maxEpsilon}${forFamilies}`,
		);
	return { declared: true, ...base, ...declared, ...figures, problems, notes };
}
