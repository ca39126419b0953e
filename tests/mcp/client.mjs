#!/usr/bin/env node
// An MCP client built on the official TypeScript SDK (Client + StdioClientTransport), for the
// end-to-end tests of `quintctl mcp wrap`. It spawns the server command given after `--` (either
// the bare server or `quintctl mcp wrap --name X -- <server command>`), runs one scenario and
// prints ONE JSON object (one line) on stdout. The environment is inherited; the server's stderr
// goes to ours. Exit status 0 unless the client itself failed (cannot start or talk to the
// server, unexpected exception: message on stderr, status 1; bad usage: status 2).
//
//   node client.mjs filesystem <allowed_file> <denied_file> -- <command> <args...>
//   node client.mjs everything -- <command> <args...>
//   node client.mjs rugpull -- <command> <args...>
//   node client.mjs bench <n> -- <command> <args...>
//   node client.mjs crash -- <command> <args...>
//
// Calls whose JSON-RPC request fails (an error response, a timeout, the connection closing) are
// recorded, not fatal: in place of the result the output holds {"error": {"code", "message"
// [, "data"]}}. A tool result with isError is a normal result. Requests time out after
// QUINT_MCP_CLIENT_TIMEOUT_MS milliseconds (default 30000).
//
// Scenarios and output:
//   filesystem  listTools, list_allowed_directories, then the read tool (read_text_file, or
//               read_file in versions without it) on <allowed_file> and on <denied_file>:
//               {tools: [sorted names], read_tool, allowed_dirs_result, allowed_read, denied_read}
//               (the results are complete CallToolResult objects). The client declares no roots
//               capability: server-filesystem would replace its allowed directories with them.
//   everything  exercises @modelcontextprotocol/server-everything broadly (see runEverything) and
//               prints a summary meant to be identical across runs and with or without a
//               transparent proxy in between (see normalize for what is stripped).
//   rugpull     listTools only: {tools: [{name, description}]} sorted by name.
//   bench <n> [interval_ms]
//               calls the tool `echo` 200 times to warm up, then n times sequentially (with an
//               interval: each call starting interval_ms after the previous one did), timing each
//               call with process.hrtime.bigint(): {n, p50_ms, p90_ms, p99_ms, mean_ms, max_ms}.
//   crash       for crash-server.mjs: calls `ok`, then `crash` (the server exits before answering):
//               {ok_result, crash_result, crash_settled_ms, connection_closed}.
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
    CreateMessageRequestSchema,
    ElicitRequestSchema,
    ListRootsRequestSchema,
    LoggingMessageNotificationSchema,
    ProgressNotificationSchema,
    ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const TIMEOUT_MS = Number(process.env.QUINT_MCP_CLIENT_TIMEOUT_MS ?? 30000);
const REQ = { timeout: TIMEOUT_MS };

function usage(message) {
    if (message) process.stderr.write(`client.mjs: ${message}\n`);
    process.stderr.write(
        "usage: node client.mjs <filesystem <allowed_file> <denied_file> | everything | rugpull | bench <n> | crash> -- <command> <args...>\n",
    );
    process.exit(2);
}

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
if (sep < 1 || sep === argv.length - 1) usage();
const [scenario, ...scenarioArgs] = argv.slice(0, sep);
const [command, ...commandArgs] = argv.slice(sep + 1);

// ---------------------------------------------------------------------------------------------
// Helpers

async function connect(capabilities = {}, setup = () => {}) {
    const client = new Client({ name: "quint-mcp-e2e-client", version: "1.0.0" }, { capabilities });
    setup(client);
    const transport = new StdioClientTransport({ command, args: commandArgs, env: process.env, stderr: "inherit" });
    let closed = false;
    client.onclose = () => {
        closed = true;
    };
    await client.connect(transport, REQ);
    return { client, isClosed: () => closed };
}

function errorInfo(err) {
    const info = { code: err?.code ?? null, message: err instanceof Error ? err.message : String(err) };
    if (err?.data !== undefined) info.data = err.data;
    return info;
}

// The result, or {error} when the request failed.
async function outcome(promise) {
    try {
        return await promise;
    } catch (err) {
        return { error: errorInfo(err) };
    }
}

// Every page of a paginated list request.
async function listAll(fn, key) {
    const items = [];
    let cursor;
    do {
        const page = await fn(cursor ? { cursor } : undefined, REQ);
        items.push(...page[key]);
        cursor = page.nextCursor;
    } while (cursor);
    return items;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, ms) {
    const deadline = Date.now() + ms;
    while (!predicate()) {
        if (Date.now() >= deadline) return false;
        await sleep(10);
    }
    return true;
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const byUri = (a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0);
const round3 = (x) => Math.round(x * 1000) / 1000;

function print(obj) {
    return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + "\n", resolve));
}

// ---------------------------------------------------------------------------------------------
// Normalization for the everything scenario. What is stripped or replaced, and why:
//  - "created at <time>": the dynamic text/blob resources of server-everything embed the
//    server's local time (new Date().toLocaleTimeString()); the time is replaced by "<time>".
//  - `blob` fields: replaced by `blob_text` (the decoded text, timestamps replaced as above) when
//    the mime type is text/*, by `blob_gunzipped_text` for application/gzip (the gzip bytes are
//    deterministic too, but the content is what matters), otherwise by `blob_sha256` +
//    `blob_bytes`.
//  - image `data` (base64 PNG): replaced by `data_sha256` + `data_bytes`, only to keep the
//    output short (it is not random).
//  - `elicitationId` values that are random UUIDs (the error path of trigger-url-elicitation
//    generates one per call): replaced by "<uuid>".
//  - get-env's result (the server's whole environment): reduced to whether it is a JSON object
//    and whether the server's PATH equals ours (a proxy may legitimately add variables).
//  - static documents (markdown files shipped with the server): text replaced by `text_sha256`,
//    `text_chars` and `first_line`, to keep the output short.
//  - notifications whose number or order depends on timing (tools/list_changed while the
//    server registers its capability-dependent tools, resources/list_changed, the simulated
//    random-level log messages, the periodic resources/updated) are reduced to sets, booleans
//    or "at least one arrived"; the random level of a simulated log message is not recorded.
// Everything else (tool definitions, results, prompts, completions, errors) is kept verbatim.
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function normText(s) {
    return s.replace(/created at [^\n"]*/g, "created at <time>");
}

function normalize(value) {
    if (typeof value === "string") return normText(value);
    if (Array.isArray(value)) return value.map(normalize);
    if (value === null || typeof value !== "object") return value;
    const out = {};
    for (const [key, v] of Object.entries(value)) {
        if (key === "blob" && typeof v === "string") {
            const bytes = Buffer.from(v, "base64");
            const mime = String(value.mimeType ?? "");
            if (mime.startsWith("text/")) out.blob_text = normText(bytes.toString("utf8"));
            else if (mime === "application/gzip") out.blob_gunzipped_text = gunzipSync(bytes).toString("utf8");
            else {
                out.blob_sha256 = sha256(bytes);
                out.blob_bytes = bytes.length;
            }
        } else if (key === "data" && typeof v === "string" && value.type === "image") {
            const bytes = Buffer.from(v, "base64");
            out.data_sha256 = sha256(bytes);
            out.data_bytes = bytes.length;
        } else if (key === "elicitationId" && typeof v === "string" && UUID_RE.test(v)) {
            out[key] = "<uuid>";
        } else {
            out[key] = normalize(v);
        }
    }
    return out;
}

function summarizeDocument(contents) {
    return contents.map((c) => {
        if (typeof c.text !== "string") return normalize(c);
        const { text, ...rest } = c;
        return { ...rest, text_sha256: sha256(text), text_chars: text.length, first_line: text.split("\n")[0] };
    });
}

// ---------------------------------------------------------------------------------------------
// filesystem

async function runFilesystem(allowedFile, deniedFile) {
    if (!allowedFile || !deniedFile) usage("filesystem needs <allowed_file> <denied_file>");
    const { client } = await connect({});
    const tools = (await listAll((p, o) => client.listTools(p, o), "tools")).map((t) => t.name).sort();
    const readTool = tools.includes("read_text_file") ? "read_text_file" : "read_file";
    const call = (name, args) => outcome(client.callTool({ name, arguments: args }, undefined, REQ));
    const out = {
        tools,
        read_tool: readTool,
        allowed_dirs_result: await call("list_allowed_directories", {}),
        allowed_read: await call(readTool, { path: allowedFile }),
        denied_read: await call(readTool, { path: deniedFile }),
    };
    await client.close();
    return out;
}

// ---------------------------------------------------------------------------------------------
// everything

const ROOT = { uri: "file:///quint-e2e/workspace", name: "quint-e2e-root" };
const ELICITATION_ANSWER = { name: "Quint Tester", check: true, email: "tester@example.com", integer: 7 };
const GZIP_INPUT = "Hello from the Quint MCP gateway test.\n";

async function runEverything() {
    const logs = []; // params of notifications/message, in arrival order
    const updated = []; // uris of notifications/resources/updated
    const otherNotifications = new Set(); // methods of all other notifications
    const progress = []; // params of notifications/progress
    let rootsRequests = 0;
    const samplingRequests = [];
    const elicitationRequests = [];

    const { client } = await connect(
        // Client capabilities that make the server register its capability-dependent tools and
        // send requests of its own (roots/list, sampling/createMessage, elicitation/create):
        // a proxy must carry server-to-client requests and their answers too.
        { roots: { listChanged: true }, sampling: {}, elicitation: { form: {}, url: {} } },
        (c) => {
            c.setRequestHandler(ListRootsRequestSchema, async () => {
                rootsRequests++;
                return { roots: [ROOT] };
            });
            c.setRequestHandler(CreateMessageRequestSchema, async (req) => {
                samplingRequests.push(req.params);
                const asked = req.params.messages.map((m) => m.content?.text ?? "").join(" ");
                return {
                    model: "quint-e2e-canned-model",
                    role: "assistant",
                    content: { type: "text", text: `Canned answer to: ${asked}` },
                    stopReason: "endTurn",
                };
            });
            c.setRequestHandler(ElicitRequestSchema, async (req) => {
                elicitationRequests.push({ mode: req.params.mode ?? "form", message: req.params.message });
                return req.params.mode === "url" ? { action: "accept" } : { action: "accept", content: ELICITATION_ANSWER };
            });
            c.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
                logs.push(n.params);
            });
            c.setNotificationHandler(ProgressNotificationSchema, async (n) => {
                progress.push(n.params);
            });
            c.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
                updated.push(n.params.uri);
            });
            c.fallbackNotificationHandler = async (n) => {
                otherNotifications.add(n.method);
            };
        },
    );
    const out = {};
    const call = (name, args, options = REQ, _meta) =>
        outcome(client.callTool({ name, arguments: args, ...(_meta ? { _meta } : {}) }, undefined, options));
    const logData = (l) => (typeof l.data === "string" ? l.data : JSON.stringify(l.data));
    const isSimulated = (l) => /^(Debug|Info|Notice|Warning|Error|Critical|Alert|Emergency)[- ]level[- ]message/i.test(logData(l));

    out.server_info = client.getServerVersion();
    out.server_capabilities = client.getServerCapabilities();
    const instructions = client.getInstructions();
    out.instructions = instructions === undefined ? null : { sha256: sha256(instructions), chars: instructions.length };

    // The server asks for the client's roots 350 ms after initialization, then logs about it.
    // Wait for that, so that nothing later races with it.
    out.roots_synced = await waitFor(() => logs.some((l) => /^Roots updated/.test(logData(l))), 5000);
    out.ping = await outcome(client.ping(REQ));

    const tools = (await listAll((p, o) => client.listTools(p, o), "tools")).sort(byName);
    const toolNames = tools.map((t) => t.name);
    const has = (name) => toolNames.includes(name);
    out.tool_names = toolNames;
    out.tools = tools;

    out.set_level_debug = await outcome(client.setLoggingLevel("debug", REQ));

    // Simple tools, called with valid arguments (each only if this version has it). Keys are
    // "tool" or "tool#variant".
    const plan = [
        ["echo", { message: "hello from quint" }],
        ["add", { a: 2, b: 40 }], // older versions' name for get-sum
        ["get-sum", { a: 2, b: 40 }],
        ["get-annotated-message", { messageType: "error", includeImage: true }],
        ["get-annotated-message#success", { messageType: "success", includeImage: false }],
        ["get-resource-links", { count: 4 }],
        ["get-resource-reference", { resourceType: "Text", resourceId: 2 }],
        ["get-resource-reference#blob", { resourceType: "Blob", resourceId: 3 }],
        ["get-structured-content", { location: "Chicago" }],
        ["get-tiny-image", {}],
        [
            "gzip-file-as-resource",
            {
                name: "quint-e2e.txt.gz",
                data: `data:text/plain;base64,${Buffer.from(GZIP_INPUT).toString("base64")}`,
                outputType: "resource",
            },
        ],
        [
            "gzip-file-as-resource#link",
            {
                name: "quint-e2e-link.txt.gz",
                data: `data:text/plain;base64,${Buffer.from(GZIP_INPUT).toString("base64")}`,
                outputType: "resourceLink",
            },
        ],
        ["get-roots-list", {}],
        ["trigger-sampling-request", { prompt: "Say hello to Quint.", maxTokens: 20 }],
        ["trigger-elicitation-request", {}],
        [
            "trigger-url-elicitation",
            { url: "https://example.com/quint-e2e", message: "Open this.", elicitationId: "quint-e2e-elicitation" },
        ],
        // The error path answers with a JSON-RPC error (-32042) carrying a random elicitationId.
        ["trigger-url-elicitation#error-path", { url: "https://example.com/quint-e2e-error", errorPath: true }],
    ];
    const calls = {};
    for (const [key, args] of plan) {
        const name = key.split("#")[0];
        if (has(name)) calls[key] = normalize(await call(name, args));
    }
    if (has("get-env")) {
        const res = await call("get-env", {});
        let summary;
        try {
            const env = JSON.parse(res.content[0].text);
            summary = { is_json_object: typeof env === "object" && env !== null, path_matches_client: env.PATH === process.env.PATH };
        } catch {
            summary = { unparsable: normalize(res) };
        }
        calls["get-env"] = summary;
    }
    // The resource the resourceLink variant of gzip-file-as-resource registered for this session.
    const link = calls["gzip-file-as-resource#link"]?.content?.find((c) => c.type === "resource_link");
    if (link) out.read_session_resource = normalize(await outcome(client.readResource({ uri: link.uri }, REQ)));

    // A tool that reports progress when the request carries a progressToken. The token is set
    // here and the notifications are collected by our own notifications/progress handler, not
    // with callTool's onprogress: the SDK drops a progress notification that arrives in the same
    // read as the response (it deletes the request's progress handler synchronously but runs
    // notification handlers a microtask later), so onprogress would make the count depend on how
    // the bytes happen to be chunked, which a proxy changes.
    for (const name of ["trigger-long-running-operation", "longRunningOperation"]) {
        if (!has(name)) continue;
        const progressToken = `quint-e2e-progress-${name}`;
        const first = progress.length;
        const steps = 5;
        const result = await call(name, { duration: 0.5, steps }, REQ, { progressToken });
        await waitFor(() => progress.length - first >= steps, 1000);
        calls[name] = { result: normalize(result), progress: progress.slice(first) };
    }
    out.calls = calls;
    out.sampling_requests = samplingRequests;
    out.elicitation_requests = elicitationRequests;
    out.roots_requests = rootsRequests;

    const handled = new Set([
        ...plan.map(([k]) => k.split("#")[0]),
        "get-env",
        "trigger-long-running-operation",
        "longRunningOperation",
        "toggle-simulated-logging",
        "toggle-subscriber-updates",
    ]);
    // Tools not called, e.g. simulate-research-query (task-based execution only) and any tool a
    // newer version adds.
    out.tools_not_called = toolNames.filter((n) => !handled.has(n));

    // Prompts.
    const prompts = (await listAll((p, o) => client.listPrompts(p, o), "prompts")).sort(byName);
    const promptNames = prompts.map((p) => p.name);
    out.prompts = prompts;
    const getPrompt = async (name, args) =>
        promptNames.includes(name) ? normalize(await outcome(client.getPrompt({ name, arguments: args }, REQ))) : undefined;
    out.get_prompt = {
        "simple-prompt": await getPrompt("simple-prompt", {}),
        "args-prompt": await getPrompt("args-prompt", { city: "Paris", state: "Texas" }),
        "resource-prompt": await getPrompt("resource-prompt", { resourceType: "Text", resourceId: "5" }),
    };
    if (promptNames.includes("completable-prompt")) {
        out.complete_prompt = await outcome(
            client.complete(
                {
                    ref: { type: "ref/prompt", name: "completable-prompt" },
                    argument: { name: "name", value: "" },
                    context: { arguments: { department: "Engineering" } },
                },
                REQ,
            ),
        );
    }

    // Resources.
    // "First" is the first in the server's order (a static document of server-everything).
    const resources = await listAll((p, o) => client.listResources(p, o), "resources");
    out.resources = [...resources].sort(byUri);
    if (resources.length > 0) {
        const first = await outcome(client.readResource({ uri: resources[0].uri }, REQ));
        out.read_first_resource = first.error ? first : { contents: summarizeDocument(first.contents) };
    }
    const templates = await listAll((p, o) => client.listResourceTemplates(p, o), "resourceTemplates");
    out.resource_templates = templates.sort((a, b) => (a.uriTemplate < b.uriTemplate ? -1 : 1));
    out.read_dynamic = {
        text: normalize(await outcome(client.readResource({ uri: "demo://resource/dynamic/text/1" }, REQ))),
        blob: normalize(await outcome(client.readResource({ uri: "demo://resource/dynamic/blob/2" }, REQ))),
    };
    const textTemplate = templates.find((t) => t.uriTemplate.includes("/text/"));
    if (textTemplate) {
        out.complete_resource_template = await outcome(
            client.complete(
                { ref: { type: "ref/resource", uri: textTemplate.uriTemplate }, argument: { name: "resourceId", value: "7" } },
                REQ,
            ),
        );
    }

    // Subscriptions: subscribe to the first resource, let the server send updates, unsubscribe.
    if (out.server_capabilities?.resources?.subscribe && resources.length > 0) {
        const uri = resources[0].uri;
        const logsBefore = logs.length;
        const sub = { uri, subscribe: await outcome(client.subscribeResource({ uri }, REQ)) };
        if (has("toggle-subscriber-updates")) {
            sub.toggle_on = normalize(await call("toggle-subscriber-updates", {}));
            sub.update_received = await waitFor(() => updated.includes(uri), 3000);
            sub.toggle_off = normalize(await call("toggle-subscriber-updates", {}));
        }
        sub.unsubscribe = await outcome(client.unsubscribeResource({ uri }, REQ));
        // The server acknowledges (un)subscribe requests with info-level log messages.
        sub.logs = logs.slice(logsBefore).filter((l) => !isSimulated(l));
        sub.updated_uris = [...new Set(updated)].sort();
        out.subscription = sub;
    }

    // Logging: simulated random-level messages, then a minimum level that filters info messages.
    if (has("toggle-simulated-logging")) {
        const before = logs.length;
        const lg = { toggle_on: normalize(await call("toggle-simulated-logging", {})) };
        lg.simulated_message_received = await waitFor(() => logs.slice(before).some(isSimulated), 3000);
        lg.toggle_off = normalize(await call("toggle-simulated-logging", {}));
        lg.simulated_messages_well_formed = logs
            .slice(before)
            .filter(isSimulated)
            .every((l) => ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"].includes(l.level));
        out.simulated_logging = lg;
    }
    if (out.server_capabilities?.logging) {
        const lv = { set_level_error: await outcome(client.setLoggingLevel("error", REQ)) };
        const before = logs.length;
        if (out.server_capabilities?.resources?.subscribe && resources.length > 0) {
            // Both acknowledgements are info-level: with the minimum at "error" none may arrive.
            await outcome(client.subscribeResource({ uri: resources[0].uri }, REQ));
            await outcome(client.unsubscribeResource({ uri: resources[0].uri }, REQ));
        }
        await outcome(client.ping(REQ));
        lv.info_messages_after_error_level = logs.slice(before).filter((l) => l.level === "info").length;
        out.log_level = lv;
    }
    out.roots_logs = [...new Set(logs.filter((l) => /^Roots updated|roots set/i.test(logData(l))).map((l) => `${l.level}: ${logData(l)}`))];
    out.other_notification_methods = [...otherNotifications].sort();
    await client.close();
    return out;
}

// ---------------------------------------------------------------------------------------------
// rugpull

async function runRugpull() {
    const { client } = await connect({});
    const tools = (await listAll((p, o) => client.listTools(p, o), "tools"))
        .map((t) => ({ name: t.name, description: t.description ?? null }))
        .sort(byName);
    await client.close();
    return { tools };
}

// ---------------------------------------------------------------------------------------------
// bench

async function runBench(nArg, intervalArg) {
    const n = Number(nArg);
    if (!Number.isInteger(n) || n < 1) usage("bench needs a positive integer <n>");
    // With an interval, calls start on a schedule (as an agent's do, a few per second at
    // most) instead of back to back; each call's own latency is what is measured.
    const intervalMs = intervalArg === undefined ? 0 : Number(intervalArg);
    if (!(intervalMs >= 0)) usage("bench's interval must be a number of milliseconds");
    const { client } = await connect({});
    const echo = async (i) => {
        const res = await client.callTool({ name: "echo", arguments: { message: `bench ${i}` } }, undefined, REQ);
        if (res.isError) throw new Error(`echo failed: ${JSON.stringify(res)}`);
    };
    for (let i = 0; i < 200; i++) await echo(i);
    const ns = [];
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
        if (intervalMs > 0) {
            const due = start + BigInt(Math.round(i * intervalMs * 1e6));
            const wait = Number(due - process.hrtime.bigint()) / 1e6;
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
        const t0 = process.hrtime.bigint();
        await echo(i);
        ns.push(Number(process.hrtime.bigint() - t0));
    }
    await client.close();
    const ms = ns.map((x) => x / 1e6).sort((a, b) => a - b);
    const pct = (p) => ms[Math.max(0, Math.ceil(p * ms.length) - 1)]; // nearest rank
    return {
        n,
        interval_ms: intervalMs,
        p50_ms: round3(pct(0.5)),
        p90_ms: round3(pct(0.9)),
        p99_ms: round3(pct(0.99)),
        mean_ms: round3(ms.reduce((a, b) => a + b, 0) / ms.length),
        max_ms: round3(ms[ms.length - 1]),
    };
}

// ---------------------------------------------------------------------------------------------
// crash

async function runCrash() {
    const { client, isClosed } = await connect({});
    const ok_result = await outcome(client.callTool({ name: "ok", arguments: {} }, undefined, REQ));
    const t0 = Date.now();
    const crash_result = await outcome(client.callTool({ name: "crash", arguments: {} }, undefined, REQ));
    const crash_settled_ms = Date.now() - t0;
    const connection_closed = await waitFor(isClosed, 2000);
    await client.close().catch(() => {});
    return { ok_result, crash_result, crash_settled_ms, connection_closed };
}

// ---------------------------------------------------------------------------------------------

const scenarios = {
    filesystem: () => runFilesystem(...scenarioArgs),
    everything: runEverything,
    rugpull: runRugpull,
    bench: () => runBench(...scenarioArgs),
    crash: runCrash,
};
if (!scenarios[scenario]) usage(`unknown scenario ${scenario}`);
try {
    await print(await scenarios[scenario]());
    process.exit(0);
} catch (err) {
    process.stderr.write(`client.mjs: ${scenario} failed: ${err?.stack ?? err}\n`);
    process.exit(1);
}
