// The search page: talks to the trio_books API on the same origin, and draws how
// each search ran from its Server-Timing header. Plain browser JavaScript, no build.
"use strict";

(() => {
  const API = document.querySelector('meta[name="trio-books-api"]').content;
  const PAGE_SIZE = 10;
  const MAX_WINDOW = 10000; // Elasticsearch's result window: page × size ≤ 10,000
  const state = { q: "", tags: [], year: null, language: null, page: 1 };
  let inFlight = null;

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

  async function search() {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    window.history.replaceState(null, "", `?${queryString(false)}`);
    $("status").textContent = "Searching…";
    document.body.setAttribute("aria-busy", "true");
    let response;
    let body = null;
    try {
      response = await fetch(`${API}/search/?${queryString(true)}`, {
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
    render(body);
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
    $("previous").disabled = true;
    $("next").disabled = true;
  }

  // ------------------------------------------------------------ results, facets, paging

  function render(body) {
    const focused = document.activeElement && document.activeElement.dataset.key;
    const pages = Math.max(1, Math.min(Math.ceil(body.count / PAGE_SIZE), Math.floor(MAX_WINDOW / PAGE_SIZE)));
    $("status").textContent =
      body.count === 1 ? "1 book found." : `${body.count.toLocaleString()} books found.`;
    $("results").replaceChildren(...body.results.map(bookItem));
    renderFacet("facet-tags", body.facets.tags, (t) => ({ key: `tags:${t.slug}`, label: t.title, count: t.count, pressed: state.tags.includes(t.slug), toggle: () => toggleTag(t.slug) }));
    renderFacet("facet-years", body.facets.years, (y) => ({ key: `year:${y.year}`, label: yearText(y.year), count: y.count, pressed: state.year === String(y.year), toggle: () => toggleSingle("year", String(y.year)) }));
    renderFacet("facet-languages", body.facets.languages, (l) => ({ key: `language:${l.code}`, label: l.code, count: l.count, pressed: state.language === l.code, toggle: () => toggleSingle("language", l.code) }));
    $("page-info").textContent = `Page ${state.page} of ${pages}`;
    $("previous").disabled = state.page <= 1;
    $("next").disabled = state.page >= pages;
    if (focused) {
      const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again && !again.disabled) again.focus();
    }
  }

  function bookItem(book) {
    const authors = book.authors.map((a) => a.name).join(", ") || "unknown author";
    const bits = [authors];
    if (book.original_publication_year !== null) bits.push(yearText(book.original_publication_year));
    if (book.average_rating !== null) {
      const votes = book.ratings_count !== null ? ` from ${book.ratings_count.toLocaleString()} ratings` : "";
      bits.push(`rated ${book.average_rating.toFixed(2)}${votes}`);
    }
    return element(
      "li",
      { className: "book" },
      element("h3", { textContent: book.title }),
      element("p", { className: "meta", textContent: bits.join(" · ") }),
    );
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

  // ------------------------------------------------------------ wiring

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = $("q").value.trim();
    state.page = 1;
    search();
  });
  $("previous").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    search();
  });
  $("next").addEventListener("click", () => {
    state.page += 1;
    search();
  });

  readLocation();
  search();
})();
