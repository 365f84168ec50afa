// Builds the page into dist/, which the host embeds at compile time (host/src/api/web.rs).
// Stable file names per content (Vite's hashes) keep `cargo xtask web --check` meaningful.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline scripts or data: URLs: the host's Content-Security-Policy allows neither.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    // `npm run dev` talks to a host on port 5000 (cargo xtask run).
    proxy: { "/api": "http://127.0.0.1:5000", "/web-config.json": "http://127.0.0.1:5000" },
  },
});
