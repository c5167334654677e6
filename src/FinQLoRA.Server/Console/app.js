"use strict";
// The console page of `finqlora serve`: plain JavaScript against the server's own API (/v1 and /metrics), no framework,
// no build step, nothing fetched from elsewhere. Every text from the server is put into the page as text, never as HTML.
// When the server asks for an API key (401), the page asks the user once and keeps the key in `apiKey` only: never in
// localStorage, sessionStorage or a cookie, so it is gone when the tab is closed or reloaded.
(() => {
  const $ = id => document.getElementById(id);
  const METRICS_EVERY_MS = 3000;

  let apiKey = null;
  let keyRequest = null; // the one pending "enter the key" prompt; every call that got 401 waits on it

  // ---- the API key -------------------------------------------------------------------------------------------------

  function askForKey(refused) {
    if (keyRequest === null) {
      keyRequest = new Promise(resolve => {
        const panel = $("key-panel"), input = $("key-input");
        $("key-message").textContent = refused ? "The server refused that key; enter its API key." : "";
        panel.hidden = false;
        input.value = "";
        input.focus();
        $("key-form").onsubmit = event => {
          event.preventDefault();
          const key = input.value.trim();
          if (key === "") { $("key-message").textContent = "Enter the key the server was started with (--api-key)."; return; }
          apiKey = key;
          input.value = "";
          panel.hidden = true;
          keyRequest = null;
          resolve();
        };
      });
    }
    return keyRequest;
  }

  // fetch() with the key when there is one; a 401 asks for the key and sends the request again.
  async function api(path, init = {}) {
    for (;;) {
      const sentKey = apiKey;
      const headers = new Headers(init.headers || {});
      if (sentKey !== null) headers.set("Authorization", "Bearer " + sentKey);
      const response = await fetch(path, { ...init, headers });
      if (response.status !== 401) return response;
      if (response.body) await response.body.cancel();
      // Another call may have got a new key while this one was on its way; then just send again.
      if (apiKey === sentKey) await askForKey(sentKey !== null);
    }
  }

  // OpenAI's error object as {message, code}, or the status line when the body is not one.
  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return { message: body.error.message || response.statusText, code: body.error.code || null };
    } catch (e) { /* not JSON */ }
    return { message: `${response.status} ${response.statusText}`, code: null };
  }

  function postJson(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  function element(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ---- models and their lineage --------------------------------------------------------------------------------------

  async function loadModels() {
    const response = await api("/v1/models");
    if (!response.ok) {
      $("server-status").textContent = "models: " + (await errorOf(response)).message;
      return;
    }
    const models = (await response.json()).data || [];
    const list = $("model-list");
    list.replaceChildren(...models.map(modelItem));
    for (const id of ["chat-model", "decision-model"]) fillChoice($(id), models);
    const base = models.find(m => !m.parent);
    $("server-status").textContent = base ? `serving ${base.id} with ${models.length - 1} adapter(s), context ${base.max_model_len}` : "";
  }

  function fillChoice(select, models) {
    const previous = select.value;
    select.replaceChildren(...models.map(m => {
      const option = element("option", null, m.parent ? `${m.id} (adapter)` : `${m.id} (base)`);
      option.value = m.id;
      return option;
    }));
    if (models.some(m => m.id === previous)) select.value = previous;
  }

  function modelItem(model) {
    const item = element("li");
    item.dataset.model = model.id;
    item.append(element("span", "model-name", model.id));
    item.append(element("span", "model-kind", model.parent ? `adapter on ${model.parent}` : `base model, context ${model.max_model_len}`));
    if (model.parent) item.append(model.finqlora_lineage ? lineageList(model.finqlora_lineage) : element("div", "lineage-missing", "no lineage.json recorded with this adapter"));
    return item;
  }

  // What lineage.json records: who made the adapter (version, commit, command line), the sha256 of every input, and of
  // every adapter file. Shown as recorded; `finqlora verify` is what checks the files against it.
  function lineageList(lineage) {
    const list = element("dl", "lineage");
    const add = (term, ...values) => {
      list.append(element("dt", null, term));
      for (const v of values) list.append(v);
    };
    const made = `FinQLoRA ${lineage.finqlora_version ?? "?"}` + (lineage.commit ? `, commit ${lineage.commit}` : "");
    add("made by", element("dd", null, made));
    const files = lineage.adapter_files && typeof lineage.adapter_files === "object" ? Object.entries(lineage.adapter_files) : [];
    if (files.length > 0) add("adapter files (sha256)", ...files.map(([name, hash]) => hashLine(name, hash)));
    const inputs = lineage.inputs && typeof lineage.inputs === "object" ? Object.entries(lineage.inputs) : [];
    for (const [kind, entries] of inputs) {
      const described = Array.isArray(entries) ? entries : [];
      if (described.length > 0) add(`${kind.replace("_", " ")} (sha256)`, ...described.map(f => hashLine(f.path, f.sha256)));
    }
    if (Array.isArray(lineage.command_line)) add("command line", element("dd", "hash", lineage.command_line.join(" ")));
    return list;
  }

  function hashLine(name, hash) {
    const line = element("dd");
    line.append(element("span", null, `${name}: `), element("span", "hash", hash));
    return line;
  }

  // ---- chat ----------------------------------------------------------------------------------------------------------

  let conversation = [];   // the turns sent so far, as chat messages
  let plainCompletion = false; // set once the server says its model has no chat template: /v1/completions instead

  function appendMessage(role, text) {
    const message = element("div", `message ${role}`);
    message.append(element("span", "role", role), element("span", "text", text));
    $("chat-log").append(message);
    return message;
  }

  function numberField(id, name, min) {
    const value = Number($(id).value);
    if ($(id).value === "" || !Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}`);
    return value;
  }

  async function sendChat(text) {
    const status = $("chat-status");
    status.className = "note";
    let temperature, maxTokens;
    try {
      temperature = numberField("chat-temperature", "temperature", 0);
      maxTokens = Math.floor(numberField("chat-max-tokens", "max tokens", 1));
    } catch (e) {
      status.className = "note error";
      status.textContent = e.message;
      return;
    }
    const model = $("chat-model").value;
    appendMessage("user", text);
    const answer = appendMessage("assistant", "");
    answer.dataset.state = "streaming";
    const shown = answer.querySelector(".text");
    const turns = [...conversation, { role: "user", content: text }];
    status.textContent = "";
    try {
      let response = await streamRequest(model, turns, text, temperature, maxTokens);
      if (!response.ok) {
        const error = await errorOf(response);
        if (error.code !== "no_chat_template" || plainCompletion) throw new Error(error.message);
        plainCompletion = true; // the server's model has no chat format: complete the text instead
        response = await streamRequest(model, turns, text, temperature, maxTokens);
        if (!response.ok) throw new Error((await errorOf(response)).message);
      }
      let reply = "", finish = null, usage = null;
      for await (const chunk of serverSentEvents(response)) {
        if (chunk.error) throw new Error(chunk.error.message || "the stream ended with an error");
        if (chunk.usage) usage = chunk.usage;
        const choice = (chunk.choices || [])[0];
        if (!choice) continue;
        const piece = plainCompletion ? choice.text : (choice.delta && choice.delta.content);
        if (piece) {
          reply += piece;
          shown.textContent = reply;
          $("chat-log").scrollTop = $("chat-log").scrollHeight;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (finish === null) throw new Error("the stream ended before the answer finished");
      conversation = plainCompletion ? [] : [...turns, { role: "assistant", content: reply }];
      answer.dataset.state = "done";
      answer.dataset.finishReason = finish;
      status.textContent = (plainCompletion ? "plain completion (the model has no chat template); " : "")
        + `finish reason: ${finish}` + (usage ? `, ${usage.completion_tokens} tokens` : "");
    } catch (e) {
      answer.dataset.state = "failed";
      shown.textContent = shown.textContent || "(no answer)";
      status.className = "note error";
      status.textContent = e.message;
    }
  }

  function streamRequest(model, turns, text, temperature, maxTokens) {
    const common = { model, temperature, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } };
    return plainCompletion
      ? postJson("/v1/completions", { ...common, prompt: text })
      : postJson("/v1/chat/completions", { ...common, messages: turns });
  }

  // Server-sent events as OpenAI streams them: `data: {json}` blocks separated by a blank line, ending with [DONE].
  async function* serverSentEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter(l => l.startsWith("data:")).map(l => l.slice(5).replace(/^ /, "")).join("\n");
        if (data === "[DONE]") { await reader.cancel(); return; }
        if (data !== "") yield JSON.parse(data);
      }
    }
  }

  // ---- decisions -----------------------------------------------------------------------------------------------------

  async function askDecision() {
    const status = $("decision-status"), result = $("decision-result");
    status.className = "note";
    const input = $("decision-input").value.trim();
    const question = $("decision-question").value.trim();
    const options = [...new Set($("decision-options").value.split("\n").map(o => o.trim()).filter(o => o !== ""))];
    const problem = input === "" ? "Enter the input the question is about."
      : question === "" ? "Enter the question."
      : options.length < 2 ? "Enter at least two different options, one per line." : null;
    if (problem) {
      status.className = "note error";
      status.textContent = problem;
      return;
    }
    status.textContent = "asking…";
    result.replaceChildren();
    const response = await postJson("/v1/decisions", {
      model: $("decision-model").value,
      input,
      questions: [{ type: "choice", name: "question", instructions: question, choices: options.map(value => ({ value })) }],
    });
    if (!response.ok) {
      status.className = "note error";
      status.textContent = (await errorOf(response)).message;
      return;
    }
    const decision = await response.json();
    const answer = decision.answers[0];
    if (answer.type === "refusal") {
      status.className = "note error";
      status.textContent = "The question and its longest option do not fit the server's context (--max-model-len).";
      return;
    }
    for (const p of answer.probabilities) result.append(optionBar(String(p.value), p.probability, p.value === answer.choice));
    const summary = element("div", "decision-summary",
      `choice: ${answer.choice}, confidence ${answer.confidence.toFixed(3)}; ${decision.usage.input_tokens} input tokens (${decision.usage.input_tokens_details.cached_tokens} cached)`);
    result.append(summary);
    status.textContent = "";
  }

  function optionBar(label, probability, chosen) {
    const row = element("div", "option-row" + (chosen ? " chosen" : ""));
    row.dataset.option = label;
    const track = element("div", "bar-track");
    const bar = element("div", "bar");
    // The style sheet allows no inline style attributes (CSP); setting the property from script is allowed.
    bar.style.width = `${(probability * 100).toFixed(4)}%`;
    track.append(bar);
    row.append(element("span", "option-label", label), track, element("span", "option-probability", `${(probability * 100).toFixed(1)} %`));
    return row;
  }

  // ---- live figures from /metrics ------------------------------------------------------------------------------------

  // Our names first, then vLLM's, so that the page reads either server's figures.
  const NAMES = {
    running: ["finqlora_num_requests_running", "vllm:num_requests_running"],
    waiting: ["finqlora_num_requests_waiting", "vllm:num_requests_waiting"],
    generated: ["finqlora_generation_tokens_total", "vllm:generation_tokens_total"],
    ttft: ["finqlora_time_to_first_token_seconds", "vllm:time_to_first_token_seconds"],
  };
  let previousPoll = null; // {time, generated, ttftSum, ttftCount} of the poll before

  // Prometheus' text format: `name{label="value",...} number` per sample; returns name → sum over its samples.
  function parseMetrics(text) {
    const sums = new Map();
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      let name, rest;
      const brace = line.indexOf("{");
      const space = line.indexOf(" ");
      if (brace >= 0 && (space < 0 || brace < space)) {
        name = line.slice(0, brace);
        let i = brace + 1, quoted = false;
        for (; i < line.length; i++) {
          const c = line[i];
          if (quoted && c === "\\") { i++; continue; }
          if (c === '"') quoted = !quoted;
          else if (c === "}" && !quoted) break;
        }
        rest = line.slice(i + 1).trim();
      } else {
        name = line.slice(0, space);
        rest = line.slice(space + 1).trim();
      }
      const value = Number(rest.split(/\s+/)[0]);
      if (!Number.isFinite(value)) continue;
      sums.set(name, (sums.get(name) || 0) + value);
    }
    return sums;
  }

  function first(sums, names, suffix = "") {
    for (const n of names) if (sums.has(n + suffix)) return sums.get(n + suffix);
    return null;
  }

  function show(id, text) { $(id).textContent = text; }

  async function pollMetrics() {
    try {
      const response = await api("/metrics");
      if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
      const sums = parseMetrics(await response.text());
      const now = performance.now();
      const running = first(sums, NAMES.running), waiting = first(sums, NAMES.waiting);
      const generated = first(sums, NAMES.generated) ?? 0;
      const ttftSum = first(sums, NAMES.ttft, "_sum") ?? 0, ttftCount = first(sums, NAMES.ttft, "_count") ?? 0;
      show("fig-running", running === null ? "—" : String(running));
      show("fig-waiting", waiting === null ? "—" : String(waiting));
      if (previousPoll !== null) {
        const seconds = (now - previousPoll.time) / 1000;
        show("fig-tokens", seconds > 0 ? (Math.max(0, generated - previousPoll.generated) / seconds).toFixed(1) : "—");
        const newFirstTokens = ttftCount - previousPoll.ttftCount;
        // The mean over the last interval when requests started in it; otherwise the mean since the server started.
        if (newFirstTokens > 0) show("fig-ttft", `${((ttftSum - previousPoll.ttftSum) / newFirstTokens * 1000).toFixed(0)} ms`);
        else if (ttftCount > 0) show("fig-ttft", `${(ttftSum / ttftCount * 1000).toFixed(0)} ms (mean)`);
      }
      previousPoll = { time: now, generated, ttftSum, ttftCount };
      $("figures-note").className = "note";
      $("figures-note").textContent = "";
    } catch (e) {
      $("figures-note").className = "note error";
      $("figures-note").textContent = e.message;
    }
    setTimeout(pollMetrics, METRICS_EVERY_MS);
  }

  // ---- wiring --------------------------------------------------------------------------------------------------------

  function whileBusy(button, work) {
    return async event => {
      event.preventDefault();
      if (button.disabled) return;
      button.disabled = true;
      try { await work(); }
      catch (e) { $("server-status").textContent = e.message; }
      finally { button.disabled = false; }
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("chat-form").addEventListener("submit", whileBusy($("chat-send"), async () => {
      const text = $("chat-input").value.trim();
      if (text === "") return;
      $("chat-input").value = "";
      await sendChat(text);
    }));
    $("chat-input").addEventListener("keydown", event => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        $("chat-form").requestSubmit();
      }
    });
    $("chat-clear").addEventListener("click", () => {
      conversation = [];
      $("chat-log").replaceChildren();
      $("chat-status").textContent = "";
    });
    $("decision-form").addEventListener("submit", whileBusy($("decision-ask"), askDecision));
    $("models-refresh").addEventListener("click", () => loadModels().catch(e => { $("server-status").textContent = e.message; }));
    loadModels().catch(e => { $("server-status").textContent = e.message; });
    pollMetrics();
  });
})();
