// The theme: CSS variables are the single source (style.css picks dark or light from the OS);
// plotly cannot read them, so the chart gets them as values.

export function readTheme() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  const light = matchMedia("(prefers-color-scheme: light)").matches;
  return {
    panel: v("--panel"),
    panel2: v("--panel-2"),
    line: v("--line-2"),
    grid: v("--line"),
    text: v("--text"),
    muted: v("--muted"),
    faint: v("--faint"),
    accent: v("--accent"),
    up: v("--up"),
    down: v("--down"),
    upVol: light ? "rgba(22, 121, 79, 0.35)" : "rgba(63, 182, 139, 0.35)",
    downVol: light ? "rgba(196, 58, 47, 0.35)" : "rgba(229, 98, 91, 0.35)",
    band: light ? "rgba(31, 111, 214, 0.14)" : "rgba(91, 156, 245, 0.16)",
    // Text on an up/down fill (the last-price label): dark on the dark theme's light greens and
    // reds, white on the light theme's deep ones (>= 4.5:1 either way).
    onAccent: light ? "#ffffff" : "#0d1117",
    font: v("--font") || "system-ui, sans-serif",
  };
}

/** Call `cb(theme)` with the new theme whenever the OS switches between dark and light. */
export function onThemeChange(cb) {
  matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => cb(readTheme()));
}
