/** The local pipeline as the integration tests start it: the handlers' logs and EMF metrics silenced. */
import { LocalPipeline } from "../../lib/local/pipeline";

export function startQuietPipeline(options: Parameters<typeof LocalPipeline.start>[0]): Promise<LocalPipeline> {
	process.env.POWERTOOLS_METRICS_DISABLED = "true";
	process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
	return LocalPipeline.start(options);
}
