/**
 * The calibrated verdict's table (calibration.ts): the clean nulls of its statistics, fitted on the clean models of
 * the fit split of test/fixtures/backdoor-wide with the search it names. Written by
 * `npm run calibrate:backdoor -- --fit --write` from scan-results.json; test/unit/backdoor/calibration.test.ts
 * checks it is what that file gives. Do not edit by hand.
 */
import type { Calibration } from "./calibration";

export const CALIBRATIONS: Calibration[] = [
	{
		families: [
			{
				name: "neural_cleanse",
				statistics: ["nc_area", "nc_relative"],
			},
			{
				name: "pairs",
				statistics: ["pair_area", "pair_relative"],
			},
			{
				name: "localised_margin",
				statistics: ["nc_concentration", "mm_relative"],
				combine: "min",
			},
		],
		nulls: {
			nc_area: {
				loc: 2.52927244328884,
				scale: 0.4045785221760884,
			},
			nc_relative: {
				loc: 0,
				scale: 0.20279786223092078,
			},
			pair_area: {
				loc: 3.029197597469559,
				scale: 0.3022230425590142,
			},
			pair_relative: {
				loc: 0.34110750231991216,
				scale: 0.2579502325474663,
			},
			nc_concentration: {
				loc: 0,
				scale: 0.1546941992270783,
			},
			mm_relative: {
				loc: 0,
				scale: 0.1972754254765475,
			},
		},
		scores: {
			neural_cleanse: {
				loc: 0.08570040586256086,
				scale: 0.811481497193291,
			},
			pairs: {
				loc: 0.1089115959022514,
				scale: 0.9608782024706465,
			},
			localised_margin: {
				loc: -0.4729340013074741,
				scale: 0.9240034034756877,
			},
		},
		typical: {
			loc: 0.4122792313452154,
			scale: 1.0495475025991552,
		},
		fitted: {
			models: 28,
			classes: 148,
			source: "test/fixtures/backdoor-wide (fit split, clean)",
			search: {
				nc: {
					steps: 100,
					restarts: 1,
					batch: 32,
				},
				pairs: {
					steps: 60,
					restarts: 1,
					maxPairs: 400,
				},
				mm: {
					steps: 300,
					restarts: 8,
				},
			},
			maskSizes: [256],
		},
	},
	{
		families: [
			{
				name: "neural_cleanse",
				statistics: ["nc_relative"],
			},
			{
				name: "pairs",
				statistics: ["pair_relative"],
			},
			{
				name: "localised_margin",
				statistics: ["nc_concentration", "mm_relative"],
				combine: "min",
			},
		],
		nulls: {
			nc_relative: {
				loc: 0,
				scale: 0.20279786223092078,
			},
			pair_relative: {
				loc: 0.34110750231991216,
				scale: 0.2579502325474663,
			},
			nc_concentration: {
				loc: 0,
				scale: 0.1546941992270783,
			},
			mm_relative: {
				loc: 0,
				scale: 0.1972754254765475,
			},
		},
		scores: {
			neural_cleanse: {
				loc: 0,
				scale: 1,
			},
			pairs: {
				loc: -1.0755285551056204e-16,
				scale: 1.0000000000000002,
			},
			localised_margin: {
				loc: -0.4729340013074741,
				scale: 0.9240034034756877,
			},
		},
		fitted: {
			models: 28,
			classes: 148,
			source: "test/fixtures/backdoor-wide (fit split, clean)",
			search: {
				nc: {
					steps: 100,
					restarts: 1,
					batch: 32,
				},
				pairs: {
					steps: 60,
					restarts: 1,
					maxPairs: 400,
				},
				mm: {
					steps: 300,
					restarts: 8,
				},
			},
			maskSizes: [256],
		},
	},
];
