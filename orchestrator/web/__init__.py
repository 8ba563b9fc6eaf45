"""The browser page served at GET /: our TypeScript sources in src/, bundled with
livekit-client (package-lock.json) into static/build/ by `npm run build`, never committed."""
