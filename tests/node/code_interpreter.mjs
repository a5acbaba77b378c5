// The Node SDK against our server: a run whose model calls code_interpreter, streamed with toolCallCreated /
// toolCallDelta handlers (the code input as the model writes it, then the logs). Prints one JSON line.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "node python please" }] });

let created = "";
let input = "";
let logs = "";
let text = "";
const stream = client.beta.threads.runs
  .stream(thread.id, { assistant_id: process.env.ASSISTANT_ID })
  .on("toolCallCreated", (call) => { created = call.type; })
  .on("toolCallDelta", (delta) => {
    if (delta.type !== "code_interpreter") return;
    input += delta.code_interpreter?.input ?? "";
    for (const output of delta.code_interpreter?.outputs ?? []) {
      if (output.type === "logs") logs += output.logs;
    }
  })
  .on("textDelta", (delta) => { text += delta.value; });
const run = await stream.finalRun();

console.log(JSON.stringify({ created, input, logs, text, status: run.status }));
