/**
 * The panel's defences against the webmail page it is framed in. Kept apart from panel.js (the form) so the
 * two can change independently.
 *
 * - claimSession: the draft is reached only with the one-time ticket SafeShare's content script posts into
 *   this frame (the panel's address carries nothing reusable).
 * - visibility: the panel refuses input while it is not fully visible and unobscured. Chromium has
 *   IntersectionObserver v2 (`trackVisibility`, `isVisible`: false when anything covers the frame, when it or
 *   an ancestor is transparent, transformed or filtered). Elsewhere (Firefox) Share needs a deliberate
 *   confirmation instead. In both, Share needs a trusted click after the panel has been visible (or the
 *   confirmation shown) for DWELL_MS.
 * - focus: typing that is cut off because the keyboard focus left the panel is pointed out.
 */
export const DWELL_MS = 800;
/** Focus lost within this long after a key press (or after a field got the focus) counts as "while typing". */
const TYPING_MS = 2000;

/** Wait for the ticket the content script posts into this frame, then exchange it for the session. */
export function claimSession(ask, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      removeEventListener("message", onMessage);
      reject(new Error("This share panel has no email to show. Nothing was shared. Close it and choose Share securely in the email again."));
    }, timeoutMs);
    async function onMessage(ev) {
      // Only from the page that framed us (where SafeShare's content script runs); a wrong ticket is ignored.
      if (ev.source !== window.parent || typeof ev.data?.safeshareTicket !== "string") return;
      try {
        const { session } = await ask("claim", { ticket: ev.data.safeshareTicket });
        clearTimeout(timer);
        removeEventListener("message", onMessage);
        resolve(session);
      } catch {
        // Someone else's ticket (or a stale one): keep waiting for the real one until the timeout.
      }
    }
    addEventListener("message", onMessage);
  });
}

/** Whether this browser can tell that the frame is covered or transparent (IntersectionObserver v2). */
export function hasVisibilityTracking() {
  return typeof IntersectionObserver === "function" && "trackVisibility" in IntersectionObserver.prototype;
}

/**
 * Watch the panel's visibility. `onChange()` is called when `state()` changes: {visible, since, tracked}.
 * While not visible, the content (`guarded` elements) is made inert and a notice says why.
 */
export function watchVisibility({ target, guarded, notice, onChange }) {
  const state = { tracked: hasVisibilityTracking(), visible: !hasVisibilityTracking(), since: performance.now() };
  let judged;
  const firstVerdict = new Promise((resolve) => {
    judged = resolve;
  });
  const set = (visible) => {
    judged();
    if (visible === state.visible) return;
    state.visible = visible;
    state.since = performance.now();
    for (const g of guarded) g.inert = !visible;
    notice.hidden = visible;
    onChange();
    // The dwell time starts again: tell the form when it is over.
    if (visible) setTimeout(onChange, DWELL_MS + 20);
  };
  if (state.tracked) {
    const io = new IntersectionObserver(
      (entries) => {
        const e = entries.at(-1);
        set(!!(e.isIntersecting && e.isVisible && e.intersectionRatio >= 0.99));
      },
      { trackVisibility: true, delay: 100, threshold: [0, 0.99, 1] },
    );
    io.observe(target);
    for (const g of guarded) g.inert = true;
    notice.hidden = false;
  } else {
    judged();
    setTimeout(onChange, DWELL_MS + 20);
  }
  return {
    state,
    /** Resolves once the browser first said whether the panel is visible (or at once where it cannot tell). */
    firstVerdict,
    /** Visible (or not trackable) and for long enough. */
    settled: () => state.visible && performance.now() - state.since >= DWELL_MS,
  };
}

/**
 * Say when the keyboard focus leaves the panel while the practitioner is typing in it: a page script that
 * focuses its own (hidden) field receives the keys typed after that. `warn(message)` shows it.
 */
export function watchFocus({ warn }) {
  let lastKey = -Infinity;
  let lastField = null;
  let count = 0;
  // Typing, or about to type: a key pressed in a field, or a field just given the focus.
  const typing = (ev) => {
    if (!ev.isTrusted) return;
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      lastKey = performance.now();
      lastField = t;
    }
  };
  addEventListener("keydown", typing, true);
  addEventListener("focusin", typing, true);
  let reported = 0;
  const lost = () => {
    if (performance.now() - lastKey > TYPING_MS || document.hasFocus() || reported === lastKey) return;
    reported = lastKey;
    count++;
    const label = lastField?.labels?.[0]?.textContent?.trim() || "a field";
    globalThis.__focusLost = count;
    warn(
      `The keyboard left SafeShare while you were typing in “${label}”. If you did not click outside the panel yourself, ` +
        "the webmail page took it: anything you typed after that went to the webmail page, not to SafeShare. Click back into the field, check what it holds, and carry on typing.",
    );
  };
  // The window's blur, and a field losing focus to nothing inside the panel (checked once the focus has moved).
  addEventListener("blur", lost);
  document.addEventListener("focusout", () => setTimeout(lost, 0), true);
}

/**
 * A deliberate confirmation (where the frame's visibility cannot be checked): Share shows a confirmation of
 * the recipients in another place, whose button works only after DWELL_MS and only with a trusted click.
 */
export function confirmStep({ box, text, yes, no, message, onYes }) {
  let shownAt = 0;
  text.textContent = message;
  box.hidden = false;
  shownAt = performance.now();
  yes.disabled = true;
  setTimeout(() => {
    yes.disabled = false;
  }, DWELL_MS);
  const done = () => {
    box.hidden = true;
    yes.onclick = null;
    no.onclick = null;
  };
  yes.onclick = (ev) => {
    if (!ev.isTrusted || performance.now() - shownAt < DWELL_MS) return;
    done();
    onYes();
  };
  no.onclick = () => done();
  yes.focus();
}
