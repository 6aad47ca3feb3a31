/**
 * Roundcube (self-hosted, 1.6 "elastic" skin): the only file that knows Roundcube's compose DOM.
 *
 * What it relies on (Roundcube's form field names and ids, stable across skins):
 * - the body: textarea#composebody (name="_message"); the compose form holds it. In the HTML editor
 *   (TinyMCE 5) that textarea is hidden and the text being written lives in the same-origin iframe
 *   #composebody_ifr, whose body#tinymce is contenteditable; TinyMCE copies it into the textarea only when
 *   Roundcube saves or sends. The hidden field _is_html says which editor is in use ("1": HTML), and the
 *   user can switch at any time, so the mode is looked up on every read and replace, never remembered;
 * - the Send button: button.send / a.send (Roundcube's names begin with an icon-font character, so the
 *   name is not matched);
 * - recipients: the recipient widget's visible chips next to the fields name="_to" / "_cc" (or the field
 *   itself when it is a visible text box); the hidden field behind the widget is never read;
 * - subject: name="_subject";
 * - attachments: #attachment-list li (id "rcmfile…"); Roundcube uploads them at once, so they are fetched
 *   back with ?_task=mail&_action=display-attachment&_file=ID&_id=COMPOSE_ID; each has a delete link a.delete.
 *
 * How TinyMCE is read, changed and guarded is in adapters/tinymce.js, and the editor's HTML becomes text in
 * adapters/html-text.js (neither knows Roundcube); both are injected before this file (background.js).
 */
(function () {
  const K = globalThis.SafeShareAdapterKit;
  const T = globalThis.SafeShareTinyMce;
  const { htmlText } = globalThis.SafeShareHtmlText;
  const BODY = "textarea#composebody";
  const SEND = "button.send, a.send";

  function composeId(doc, compose) {
    return compose.querySelector('input[name="_id"]')?.value ?? doc.querySelector('input[name="_id"]')?.value ?? "";
  }

  function items(doc) {
    return [...doc.querySelectorAll("#attachment-list li")].filter((li) => /^rcmfile/.test(li.getAttribute("id") ?? ""));
  }

  function textarea(compose) {
    return compose.querySelector(BODY) ?? compose.ownerDocument.querySelector(BODY);
  }

  function field(compose, name) {
    return compose.querySelector(`[name="${name}"]`) ?? compose.ownerDocument.querySelector(`[name="${name}"]`);
  }

  /**
   * The recipients Roundcube visibly shows for field `name`: the recipient widget's chips (ul.recipient-input
   * li.recipient) and what is typed in its input, or the field itself when it is shown as a plain text box.
   * The hidden _to/_cc textarea behind the widget is never read, so an address slipped into it (or an invisible
   * chip) is not shared with.
   */
  function shownRecipients(compose, name) {
    const area = field(compose, name);
    if (!area) return [];
    const widget = area.parentElement?.querySelector("ul.recipient-input");
    const found = [];
    const add = (list) => list.forEach((a) => found.includes(a) || found.push(a));
    if (widget) {
      if (!K.isShown(widget)) return [];
      for (const li of widget.querySelectorAll("li.recipient")) {
        if (K.isShown(li)) add(K.emailsIn(`${li.getAttribute("title") ?? ""} ${K.text(li)}`));
      }
      for (const input of widget.querySelectorAll("li.input input")) if (K.isShown(input)) add(K.emailsIn(input.value));
      return found;
    }
    return K.isShown(area) ? K.emailsIn(area.value) : [];
  }

  /** Roundcube's TinyMCE editor body (over textarea#composebody), or null when the HTML editor is not open. */
  function editorBody(compose) {
    return T.editorBody(compose.ownerDocument, textarea(compose), "composebody");
  }

  /** "html" when the HTML editor is in use, "plain" otherwise (no _is_html field: whichever editor is open). */
  function mode(compose) {
    const flag = field(compose, "_is_html")?.value;
    if (flag === "1") return "html";
    if (flag === "0") return "plain";
    return editorBody(compose) ? "html" : "plain";
  }

  /** @type {WebmailAdapter} (the contract in adapters/kit.js) */
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
    /** Which editor the draft is in: "html" (TinyMCE) or "plain". */
    mode,
    read(compose) {
      const doc = compose.ownerDocument;
      const id = composeId(doc, compose);
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
      let text = textarea(compose)?.value ?? "";
      let html = "";
      if (mode(compose) === "html") {
        const body = editorBody(compose);
        if (!body) throw new Error("Roundcube's editor is still starting. Nothing was shared: wait a moment, then choose Share securely again.");
        html = T.cleanHtml(body);
        text = htmlText(body);
      }
      return {
        webmail: "roundcube",
        to: shownRecipients(compose, "_to"),
        cc: shownRecipients(compose, "_cc"),
        subject: field(compose, "_subject")?.value ?? "",
        text,
        html,
        attachments,
      };
    },
    /**
     * Leave only `text` in the draft, whichever editor is open now. In the HTML editor both the editor and the
     * hidden textarea are replaced (Roundcube sends the textarea, which TinyMCE refreshes from the editor on
     * save), and TinyMCE is told with the input event it records as a change (an undo level, the draft marked
     * changed). In either mode Roundcube is then nudged (a keypress, which it counts as typing) to overwrite
     * the copy of the form it keeps in the browser's localStorage, which still holds the shared content. TinyMCE's
     * Undo, which would bring the shared content back, is refused from then on (tinymce.js guardUndo).
     */
    replaceBody(compose, text) {
      const area = textarea(compose);
      const body = editorBody(compose);
      if (body) {
        T.fillEditor(body, text);
        T.fire(body, "input", { inputType: "insertReplacementText" });
        T.guardUndo(body, compose.ownerDocument);
      }
      if (mode(compose) === "plain") K.setFieldValue(area, text);
      else K.setFieldValue(area, body ? T.cleanHtml(body) : T.paragraphsHtml(text)); // no editor yet: it starts from this
      T.fire(area, "keypress");
    },
    /**
     * The subject goes out with the notification email: after a share it must say nothing about the case. Set
     * before replaceBody, whose keypress makes Roundcube save its localStorage copy of the form with it.
     */
    replaceSubject(compose, subject) {
      const input = field(compose, "_subject");
      if (input) K.setFieldValue(input, subject);
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
