//! Charts drawn as SVG on the server (placeholder; the dashboard helper fills it).
