/**
 * @module retention
 * Pruning of expired identity rows and old build logs (retention.* settings), on a timer in serve.
 */
export { retentionServiceFactory, type Pruned, type RetentionService, type RetentionSettings } from "./service.ts";
