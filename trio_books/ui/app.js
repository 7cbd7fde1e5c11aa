// The search page: talks to the trio_books API on the same origin, and draws how
// each search ran from its Server-Timing header. Plain browser JavaScript, no build.
"use strict";

(() => {
  const API = document.querySelector('meta[name="trio-books-api"]').content;
  const PAGE_SIZE = 10;
  const COMPLETE_DELAY_MS = 150; // wait for a pause in typing before asking
  const COMPLETE_SIZE = 6;
  const state = { q: "", tags: [], year: null, language: null, page: 1, similar: null };
  let inFlight = null;
  let completing = null; // the completion request in flight
  let completeTimer = null;
  let completions = []; // what the list offers: { kind, label, value }
  let active = -1; // the option chosen with the arrow keys

  const $ = (id) => document.getElementById(id);

  function element(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // ------------------------------------------------------------ state <-> URL

  function readLocation() {
    const params = new URLSearchParams(window.location.search);
    state.q = params.get("q") || "";
    state.tags = params.getAll("tags");
    state.year = params.get("year");
    state.language = params.get("language");
    state.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    state.similar = /^\d+$/.test(params.get("similar") || "") ? params.get("similar") : null;
    $("q").value = state.q;
  }

  function queryString(withPaging) {
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    for (const tag of state.tags) params.append("tags", tag);
    if (state.year !== null) params.set("year", state.year);
    if (state.language !== null) params.set("language", state.language);
    if (withPaging) params.set("size", String(PAGE_SIZE));
    if (state.page > 1 || withPaging) params.set("page", String(state.page));
    return params.toString();
  }

  // ------------------------------------------------------------ talking to the API

  function search() {
    state.similar = null;
    window.history.replaceState(null, "", `?${queryString(false)}`);
    return ask(`${API}/search/?${queryString(true)}`, render);
  }

  function similar(bookId, title) {
    state.similar = bookId;
    window.history.replaceState(null, "", `?similar=${encodeURIComponent(bookId)}`);
    return ask(`${API}/books/${encodeURIComponent(bookId)}/similar?size=${PAGE_SIZE}`, (body) =>
      renderSimilar(body, title),
    );
  }

  // One request to the API at a time: a newer one cancels the older, whose answer is dropped.
  async function ask(url, show) {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    $("status").textContent = "Searching…";
    document.body.setAttribute("aria-busy", "true");
    let response;
    let body = null;
    try {
      response = await fetch(url, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (error.name === "AbortError") return;
      finish(controller);
      showError("The search service could not be reached.", String(error.message || error));
      return;
    }
    if (controller !== inFlight) return; // a newer search has started
    finish(controller);
    drawTimeline(response.headers.get("Server-Timing"));
    if (!response.ok) {
      const code = body && body.error ? ` (${body.error})` : "";
      const retry = response.headers.get("Retry-After");
      showError(
        `The search service answered ${response.status}${code}.`,
        (body && body.message) || response.statusText,
        retry ? `Try again in ${retry} s.` : "",
      );
      clearResults();
      return;
    }
    hideError();
    show(body);
  }

  function finish(controller) {
    if (inFlight === controller) inFlight = null;
    document.body.removeAttribute("aria-busy");
  }

  function showError(title, detail, advice = "") {
    const box = $("error");
    box.replaceChildren(
      element("strong", { textContent: title }),
      element("span", { textContent: detail }),
      ...(advice ? [element("span", { textContent: advice })] : []),
    );
    box.hidden = false;
    $("status").textContent = "";
  }

  function hideError() {
    $("error").hidden = true;
    $("error").replaceChildren();
  }

  function clearResults() {
    $("results").replaceChildren();
    for (const id of ["facet-tags", "facet-years", "facet-languages"]) {
      $(id).querySelector("ul").replaceChildren();
    }
    $("page-info").textContent = "";
    setPageLink($("previous"), null);
    setPageLink($("next"), null);
  }

  // ------------------------------------------------------------ results, facets, paging

  function render(body) {
    const focused = document.activeElement && document.activeElement.dataset.key;
    $("pager").hidden = false;
    $("status").textContent =
      body.count === 1 ? "1 book found." : `${body.count.toLocaleString()} books found.`;
    $("results").replaceChildren(...body.results.map(bookItem));
    renderFacet("facet-tags", body.facets.tags, (t) => ({ key: `tags:${t.slug}`, label: t.title, count: t.count, pressed: state.tags.includes(t.slug), toggle: () => toggleTag(t.slug) }));
    renderFacet("facet-years", body.facets.years, (y) => ({ key: `year:${y.year}`, label: yearText(y.year), count: y.count, pressed: state.year === String(y.year), toggle: () => toggleSingle("year", String(y.year)) }));
    renderFacet("facet-languages", body.facets.languages, (l) => ({ key: `language:${l.code}`, label: l.code, count: l.count, pressed: state.language === l.code, toggle: () => toggleSingle("language", l.code) }));
    $("page-info").textContent = `Page ${body.page} of ${Math.max(1, body.pages)}`;
    // The API's own links: query strings that keep every parameter, read back by readLocation.
    setPageLink($("previous"), body.prev);
    setPageLink($("next"), body.next);
    if (focused) {
      const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again && !again.disabled) again.focus();
    }
  }

  function renderSimilar(body, title) {
    $("status").textContent = `Books like ${title ? `“${title}”` : `book ${state.similar}`}:`;
    $("results").replaceChildren(...body.results.map(bookItem));
    for (const id of ["facet-tags", "facet-years", "facet-languages"]) {
      $(id).querySelector("ul").replaceChildren();
    }
    $("pager").hidden = true;
  }

  // A numbered page only: a cursor link (past 10,000 results) is for API clients.
  function setPageLink(link, target) {
    if (target && new URLSearchParams(target).has("page")) {
      link.href = target;
      link.removeAttribute("aria-disabled");
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
    }
  }

  // Highlights are {text, match} segments: matched ones become <mark>, all of them text
  // nodes. Nothing from the answer is ever parsed as HTML.
  function segmentsInto(node, segments) {
    for (const segment of segments) {
      node.append(segment.match ? element("mark", { textContent: segment.text }) : segment.text);
    }
    return node;
  }

  function bookItem(book) {
    const meta = element("p", { className: "meta" });
    const marked = book.highlight;
    if (!book.authors.length) meta.append("unknown author");
    book.authors.forEach((author, i) => {
      if (i) meta.append(", ");
      if (marked && marked.authors[i]) segmentsInto(meta, marked.authors[i]);
      else meta.append(author.name);
    });
    const bits = [];
    if (book.original_publication_year !== null) bits.push(yearText(book.original_publication_year));
    if (book.average_rating !== null) {
      const votes = book.ratings_count !== null ? ` from ${book.ratings_count.toLocaleString()} ratings` : "";
      bits.push(`rated ${book.average_rating.toFixed(2)}${votes}`);
    }
    if (bits.length) meta.append(` · ${bits.join(" · ")}`);
    const heading = marked ? segmentsInto(element("h3"), marked.title) : element("h3", { textContent: book.title });
    const like = element("a", {
      className: "similar",
      href: `?similar=${book.book_id}`,
      textContent: "Similar books",
      dataset: { book: String(book.book_id) },
    });
    like.addEventListener("click", (event) => {
      event.preventDefault();
      similar(String(book.book_id), book.title);
    });
    return element("li", { className: "book" }, heading, meta, like);
  }

  function yearText(year) {
    return year < 0 ? `${-year} BCE` : String(year);
  }

  function renderFacet(id, buckets, describe) {
    const items = buckets.map((bucket) => {
      const facet = describe(bucket);
      const button = element(
        "button",
        { type: "button", dataset: { key: facet.key }, "aria-pressed": String(facet.pressed) },
        facet.label,
        element("span", { className: "count", textContent: `(${facet.count})` }),
      );
      button.addEventListener("click", facet.toggle);
      return element("li", {}, button);
    });
    $(id).querySelector("ul").replaceChildren(...items);
  }

  function toggleTag(slug) {
    state.tags = state.tags.includes(slug) ? state.tags.filter((t) => t !== slug) : [...state.tags, slug];
    state.page = 1;
    search();
  }

  function toggleSingle(key, value) {
    state[key] = state[key] === value ? null : value;
    state.page = 1;
    search();
  }

  // ------------------------------------------------------------ the timeline

  // Entries look like: es-hits;dur=12.3;desc="start=0.4", total;dur=20.0; a branch that did
  // not answer says how it ended: desc="start=1.0 outcome=timed-out".
  function parseServerTiming(header) {
    const entries = [];
    for (const part of (header || "").split(",")) {
      const [name, ...params] = part.trim().split(";");
      if (!name) continue;
      const entry = { name: name.trim(), dur: null, start: null, outcome: "ok" };
      for (const param of params) {
        const [key, ...rest] = param.trim().split("=");
        const value = rest.join("=").trim().replace(/^"|"$/g, "");
        if (key === "dur") entry.dur = parseFloat(value);
        const start = key === "desc" && /(?:^|\s)start=(-?[\d.]+)/.exec(value);
        if (start) entry.start = parseFloat(start[1]);
        const outcome = key === "desc" && /(?:^|\s)outcome=([\w-]+)/.exec(value);
        if (outcome) entry.outcome = outcome[1].replace(/-/g, " ");
      }
      if (entry.dur !== null && !Number.isNaN(entry.dur)) entries.push(entry);
    }
    return entries;
  }

  function drawTimeline(header) {
    const entries = parseServerTiming(header);
    const total = entries.find((e) => e.name === "total");
    const branches = entries.filter((e) => e.name !== "total");
    const scale = Math.max(total ? total.dur : 0, ...branches.map((e) => (e.start || 0) + e.dur), 0.001);
    const box = $("timeline");
    const text = $("timeline-text");
    box.replaceChildren();
    text.replaceChildren();
    for (const entry of [...branches, ...(total ? [{ ...total, start: 0 }] : [])]) {
      const start = entry.start === null ? 0 : entry.start;
      const bar = element("div", {
        className: entry.name === "total" ? "bar total" : `bar outcome-${entry.outcome.replace(/ /g, "-")}`,
        dataset: { name: entry.name, start: String(start), end: String(start + entry.dur) },
        title: `${entry.name}: from ${start.toFixed(1)} ms to ${(start + entry.dur).toFixed(1)} ms`,
      });
      // CSSOM, not inline style attributes: allowed by the page's style-src 'self'.
      bar.style.left = `${(start / scale) * 100}%`;
      bar.style.width = `${(entry.dur / scale) * 100}%`;
      box.append(
        element("span", { className: "name", textContent: entry.name }),
        element("div", { className: "track" }, bar),
        element("span", { className: "ms", textContent: `${entry.dur.toFixed(1)} ms` }),
      );
      const ended = entry.outcome && entry.outcome !== "ok" ? ` (${entry.outcome})` : "";
      bar.title += ended;
      text.append(element("li", { textContent: `${entry.name} started at ${start.toFixed(1)} ms and took ${entry.dur.toFixed(1)} ms${ended}` }));
    }
    if (entries.length) {
      box.append(element("div", { className: "axis" }, element("span", { textContent: "0 ms" }), element("span", { textContent: `${scale.toFixed(1)} ms` })));
    }
    const overlap = branches.length > 1 && Math.max(...branches.map((e) => e.start || 0)) < Math.min(...branches.map((e) => (e.start || 0) + e.dur));
    box.setAttribute(
      "aria-label",
      branches.length
        ? `${branches.length} Elasticsearch requests in ${scale.toFixed(1)} ms${overlap ? ", all running at the same time" : ""}`
        : "This response made no Elasticsearch request",
    );
  }

  // ------------------------------------------------------------ search as you type

  function scheduleCompletion() {
    clearTimeout(completeTimer);
    // What is typed now makes the request in flight stale: cancelled at once.
    if (completing) completing.abort();
    completing = null;
    const prefix = $("q").value.trim();
    if (!prefix) {
      closeCompletions();
      return;
    }
    completeTimer = setTimeout(() => {
      completeTimer = null;
      complete(prefix);
    }, COMPLETE_DELAY_MS);
  }

  async function complete(prefix) {
    // The older request is cancelled: its answer, however late, never replaces this one's.
    if (completing) completing.abort();
    const controller = new AbortController();
    completing = controller;
    let body = null;
    try {
      const params = new URLSearchParams({ prefix: prefix.slice(0, 100), size: String(COMPLETE_SIZE) });
      const response = await fetch(`${API}/complete?${params}`, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      body = response.ok ? await response.json() : null;
    } catch (error) {
      body = null; // cancelled, or the network: no list
    }
    if (controller !== completing) return;
    completing = null;
    if (body) showCompletions(prefix, body);
    else closeCompletions();
  }

  function showCompletions(prefix, body) {
    completions = [
      ...body.titles.map((t) => ({ kind: "Title", label: t.title, value: t.title })),
      ...body.authors.map((a) => ({
        kind: "Author",
        label: `${a.name} (${a.books} book${a.books === 1 ? "" : "s"})`,
        value: a.name.trim(),
      })),
    ];
    active = -1;
    const list = $("completions");
    list.replaceChildren(
      ...completions.map((option, i) => {
        const item = element(
          "li",
          { id: `completion-${i}`, role: "option", "aria-selected": "false" },
          element("span", { className: "kind", textContent: option.kind }),
          option.label,
        );
        // mousedown, not click: the search box keeps its focus.
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          pick(i);
        });
        return item;
      }),
    );
    list.dataset.prefix = prefix;
    list.hidden = completions.length === 0;
    $("q").setAttribute("aria-expanded", String(!list.hidden));
    $("q").removeAttribute("aria-activedescendant");
  }

  function closeCompletions() {
    clearTimeout(completeTimer);
    completeTimer = null;
    if (completing) completing.abort();
    completing = null;
    completions = [];
    active = -1;
    $("completions").hidden = true;
    $("completions").replaceChildren();
    $("q").setAttribute("aria-expanded", "false");
    $("q").removeAttribute("aria-activedescendant");
  }

  function moveActive(step) {
    if (!completions.length) return;
    active = (active + step + completions.length) % completions.length;
    $("completions").querySelectorAll("li").forEach((item, i) => {
      item.setAttribute("aria-selected", String(i === active));
    });
    $("q").setAttribute("aria-activedescendant", `completion-${active}`);
  }

  function pick(i) {
    $("q").value = completions[i].value;
    closeCompletions();
    state.q = $("q").value;
    state.page = 1;
    search();
  }

  // ------------------------------------------------------------ wiring

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    closeCompletions();
    state.q = $("q").value.trim();
    state.page = 1;
    search();
  });
  $("q").addEventListener("input", scheduleCompletion);
  $("q").addEventListener("keydown", (event) => {
    if (event.isComposing) return; // an input method is still composing the text
    const open = !$("completions").hidden;
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && open) {
      event.preventDefault();
      moveActive(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter" && open && active >= 0) {
      event.preventDefault();
      pick(active);
    } else if (event.key === "Escape" && (open || completing || completeTimer !== null)) {
      // Escape closes the list; a search box would also clear its text, so it goes no further.
      event.preventDefault();
      closeCompletions();
    }
  });
  $("q").addEventListener("blur", closeCompletions);
  for (const id of ["previous", "next"]) {
    $(id).addEventListener("click", (event) => {
      event.preventDefault();
      const target = $(id).getAttribute("href");
      if (!target) return;
      state.page = Math.max(1, parseInt(new URLSearchParams(target).get("page") || "1", 10) || 1);
      search();
    });
  }

  readLocation();
  if (state.similar !== null) similar(state.similar, null);
  else search();
})();
