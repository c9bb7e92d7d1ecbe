/**
 * Family digits8 (1×8×8 grey: CNN (Conv/ReLU/MaxPool) and MLP): on every trained fixture, ftguard's verdict rule
 * flags each backdoored model with exactly its true target and no clean model; the
 * paper's rule is measured beside it on the same runs. A shorter search than the
 * default (40 steps × 1 restart) keeps `npm test` to minutes; the families run
 * in parallel as separate files.
 */
import { describeFamily } from "../helpers/backdoor-fixtures";

describeFamily("digits8", 40, 1);
