/**
 * Bull Board at /v1/admin/queues: BullMQ's own view of the queues (counts, jobs, their data and
 * errors), for the operator. Read-only (`readOnlyMode` on every queue: its retry, promote, clean,
 * pause and remove actions answer 405), because those would change BullMQ's record behind the job
 * records, quotas and event streams the api keeps; cancel jobs with DELETE /v1/jobs/:id. Its access
 * rule is the route table's (`operator`: the admin key when keys are configured). It is an Express
 * router, mounted before Nest's routes; its page loads only from this api: its own CSP drops the
 * web font it would fetch from Google.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import helmet from 'helmet';
import { QUEUE_NAMES } from '@relu-lstm/jobs';
import type { JobQueues } from '../infra/job-queues';
import { QUEUE_BOARD_PATH } from '../routes';

export function mountQueueBoard(app: NestExpressApplication, queues: JobQueues): void {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(QUEUE_BOARD_PATH);
  createBullBoard({
    queues: QUEUE_NAMES.map((q) => new BullMQAdapter(queues.get(q), { readOnlyMode: true })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'ReLU-LSTM queues' } },
  });
  const csp = helmet.contentSecurityPolicy({
    directives: { styleSrc: ["'self'", "'unsafe-inline'"], fontSrc: ["'self'", 'data:'] },
  });
  app.use(QUEUE_BOARD_PATH, csp, serverAdapter.getRouter());
}
