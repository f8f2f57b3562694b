/**
 * Vite build of the admin console: src/console → dist/console, served by `guardian-sync api`
 * under /console/ (src/api/console.ts). Everything is bundled: no request leaves the host.
 * Dev server: `npx vite --config src/console/vite.config.ts` proxies the API to API_URL
 * (default http://127.0.0.1:8080).
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const api = process.env.API_URL ?? 'http://127.0.0.1:8080';
const apiPaths = [
  '/session',
  '/districts',
  '/runs',
  '/imports',
  '/access-codes',
  '/associations',
  '/audit',
  '/changes',
];

export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: '../../dist/console',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 2000,
  },
  server: { proxy: Object.fromEntries(apiPaths.map(p => [p, api])) },
});
