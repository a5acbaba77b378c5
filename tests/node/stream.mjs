// The Node SDK against our server: runs.stream() with textDelta / toolCallDelta handlers and finalRun(),
// then submitToolOutputsStream(), then createAndPoll() of a slow run (its poll is held until the run ends).
// Prints one JSON line for the pytest suite to check.
import OpenAI from "openai";

let polls = 0;
const countingFetch = (url, init) => {
  if ((init?.method ?? "GET") === "GET" && /\/runs\/run_/.test(String(url))) polls += 1;
  return fetch(url, init);
};
const client = new OpenAI({
  baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0, fetch: countingFetch,
});
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "node weather please" }] });

let toolCallDeltaArgs = "";
const first = client.beta.threads.runs
  .stream(thread.id, { assistant_id: process.env.ASSISTANT_ID })
  .on("toolCallDelta", (delta) => { toolCallDeltaArgs += delta.function?.arguments ?? ""; });
const firstRun = await first.finalRun();
const calls = firstRun.required_action.submit_tool_outputs.tool_calls;

let text = "";
const second = client.beta.threads.runs
  .submitToolOutputsStream(firstRun.id, {
    thread_id: thread.id,
    tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: "springlike" })),
  })
  .on("textDelta", (delta) => { text += delta.value; });
const finalRun = await second.finalRun();

await client.beta.threads.messages.create(thread.id, { role: "user", content: "node slow poll" });
const polled = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: process.env.ASSISTANT_ID });

console.log(JSON.stringify({
  toolCallDeltaArgs, firstStatus: firstRun.status, text, finalStatus: finalRun.status,
  polledStatus: polled.status, polls,
}));
