/**
 * Roundcube (self-hosted, 1.6 "elastic" skin): the only file that knows Roundcube's compose DOM.
 *
 * What it relies on (Roundcube's form field names and ids, stable across skins):
 * - the plain-text editor: textarea#composebody (name="_message"); the compose form holds it;
 * - the Send button: button.send / a.send (Roundcube's names begin with an icon-font character, so the
 *   name is not matched);
 * - recipients: the fields name="_to" / "_cc" (Roundcube's recipient widget keeps them up to date);
 * - subject: name="_subject";
 * - attachments: #attachment-list li (id "rcmfile…"); Roundcube uploads them at once, so they are fetched
 *   back with ?_task=mail&_action=display-attachment&_file=ID&_id=COMPOSE_ID; each has a delete link a.delete.
 */
(function () {
  const K = globalThis.SafeShareAdapterKit;
  const BODY = "textarea#composebody";
  const SEND = "button.send, a.send";

  function composeId(doc, compose) {
    return compose.querySelector('input[name="_id"]')?.value ?? doc.querySelector('input[name="_id"]')?.value ?? "";
  }

  function items(doc) {
    return [...doc.querySelectorAll("#attachment-list li")].filter((li) => /^rcmfile/.test(li.getAttribute("id") ?? ""));
  }

  const adapter = {
    name: "roundcube",
    findComposes(doc) {
      const body = doc.querySelector(BODY);
      if (!body) return [];
      return [body.closest("form") ?? doc.body];
    },
    anchor(compose) {
      return compose.querySelector(SEND) ?? compose.ownerDocument.querySelector(SEND);
    },
    read(compose) {
      const doc = compose.ownerDocument;
      const id = composeId(doc, compose);
      const field = (name) => compose.querySelector(`[name="${name}"]`) ?? doc.querySelector(`[name="${name}"]`);
      const attachments = items(doc).map((li) => {
        const nameEl = li.querySelector(".attachment-name");
        const raw = (nameEl ? nameEl.textContent : li.getAttribute("title") || li.textContent || "attachment").trim();
        const file = li.getAttribute("id");
        return {
          name: raw,
          type: li.getAttribute("data-type") || "",
          url: `?_task=mail&_action=display-attachment&_file=${encodeURIComponent(file)}&_id=${encodeURIComponent(id)}`,
        };
      });
      const body = compose.querySelector(BODY);
      return {
        webmail: "roundcube",
        to: K.emailsIn(field("_to")?.value),
        cc: K.emailsIn(field("_cc")?.value),
        subject: field("_subject")?.value ?? "",
        text: body?.value ?? "",
        html: "",
        attachments,
      };
    },
    replaceBody(compose, text) {
      K.setFieldValue(compose.querySelector(BODY), text);
    },
    removeAttachments(compose) {
      const links = items(compose.ownerDocument)
        .map((li) => li.querySelector("a.delete"))
        .filter(Boolean);
      links.forEach(K.click);
      return links.length;
    },
  };
  globalThis.SafeShareAdapters.roundcube = adapter;
})();
