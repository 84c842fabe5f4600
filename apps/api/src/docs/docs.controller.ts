/**
 * GET /docs: Swagger UI over the OpenAPI document (GET /docs/openapi.json, built once). The page and
 * its files are public and served from `swagger-ui-dist` (no CDN); the document itself needs a
 * tenant's key like every other route, so the page's own script (`docs-ui.js`) asks for the key
 * once (kept in the tab's sessionStorage, sent as a bearer token, never in a URL) when the api has
 * keys, and "Try it out" sends it too. No inline script: helmet's CSP (`script-src 'self'`) holds.
 */
import * as path from 'node:path';
import { Controller, Get, Header, Inject, Param, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { JobContract } from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { CONTRACT } from '../infra/tokens';
import { DOCS_ASSETS, type DocsAsset } from '../routes';
import { buildOpenApi } from './openapi';

const VERSION = '0.1.0';

const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ReLU-LSTM Runner API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs-ui.js"></script>
</body>
</html>
`;

/** Loads the document with the tab's key (asked once on a 401), then shows it; requests carry the key. */
const DOCS_UI_JS = `'use strict';
(async () => {
  const KEY = 'relu-lstm-api-key';
  const auth = () => (sessionStorage.getItem(KEY) ? { Authorization: 'Bearer ' + sessionStorage.getItem(KEY) } : {});
  let r = await fetch('/docs/openapi.json', { headers: auth() });
  while (r.status === 401) {
    const key = window.prompt('This api has API keys: paste yours (kept in this tab only)');
    if (!key) break;
    sessionStorage.setItem(KEY, key.trim());
    r = await fetch('/docs/openapi.json', { headers: auth() });
  }
  const body = await r.json();
  if (!r.ok) {
    document.getElementById('swagger-ui').textContent = (body.error && body.error.message) || 'HTTP ' + r.status;
    return;
  }
  window.ui = SwaggerUIBundle({
    spec: body,
    dom_id: '#swagger-ui',
    deepLinking: true,
    requestInterceptor: (req) => {
      Object.assign(req.headers, auth());
      return req;
    },
  });
})();
`;

/** The file of each asset; `docs-ui.js` is the page's own script above. */
const ASSET_FILES: Record<Exclude<DocsAsset, 'docs-ui.js'>, string> = {
  'swagger-ui.css': 'swagger-ui.css',
  'swagger-ui-bundle.js': 'swagger-ui-bundle.js',
  'favicon-32x32.png': 'favicon-32x32.png',
};

@Controller('docs')
export class DocsController {
  private readonly doc: Record<string, unknown>;

  constructor(@Inject(CONTRACT) contract: JobContract) {
    this.doc = buildOpenApi(contract, VERSION);
  }

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  page(): string {
    return PAGE;
  }

  @Get('openapi.json')
  json(): Record<string, unknown> {
    return this.doc;
  }

  @Get('assets/:asset')
  asset(@Param('asset') asset: string, @Res() res: Response): void {
    if (!(DOCS_ASSETS as readonly string[]).includes(asset)) {
      throw new ApiError(404, 'not_found', `no docs asset ${JSON.stringify(asset)}`);
    }
    res.setHeader('Cache-Control', 'public, max-age=3600');
    if (asset === 'docs-ui.js') {
      res.type('application/javascript').send(DOCS_UI_JS);
      return;
    }
    res.sendFile(path.join(SWAGGER_UI_DIR, ASSET_FILES[asset as keyof typeof ASSET_FILES]));
  }
}
