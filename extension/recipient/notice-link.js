/**
 * Runs only on the notification page of the configured gateway (`<gateway>/s/ID`, registered by the service
 * worker). It reads nothing from the page: it asks the service worker to show that share in the extension,
 * which takes the share ID from this tab's address. Without the extension the gateway page stays as it is.
 */
(() => {
  const api = globalThis.browser ?? globalThis.chrome;
  try {
    const sent = api.runtime.sendMessage({ type: "open-share" });
    if (sent && typeof sent.catch === "function") sent.catch(() => {});
  } catch {
    // The extension was reloaded or removed: the gateway's own page explains what to do.
  }
})();
