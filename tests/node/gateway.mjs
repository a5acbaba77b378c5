// The Node SDK against the gateway: chat (plain, streamed with usage, tools, json_schema), embeddings (float and
// the SDK's default base64), models list/retrieve, a provider error. Prints one JSON line for pytest to check.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const out = {};

const plain = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "node hello" }],
});
out.plain = { content: plain.choices[0].message.content, object: plain.object, usage: plain.usage };

const stream = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "node count" }], stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  usage = chunk.usage ?? usage;
}
out.stream = { text, usage };

const tools = [{ type: "function", function: { name: "get_weather", parameters: {
  type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
const toolAnswer = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "node weather" }], tools, tool_choice: "required",
});
out.tools = { finish: toolAnswer.choices[0].finish_reason, call: toolAnswer.choices[0].message.tool_calls[0].function };

const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"],
  additionalProperties: false };
const structured = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "node structured" }],
  response_format: { type: "json_schema", json_schema: { name: "place", schema, strict: true } },
});
out.jsonSchema = JSON.parse(structured.choices[0].message.content);

const floats = await client.embeddings.create({ model: "text-embedding-3-small", input: "node vector",
  encoding_format: "float", dimensions: 8 });
const decoded = await client.embeddings.create({ model: "text-embedding-3-small", input: "node vector",
  dimensions: 8 });
out.embeddings = { float: floats.data[0].embedding, defaultDecoded: decoded.data[0].embedding };

const models = [];
for await (const model of client.models.list()) models.push(model.id);
out.models = { ids: models, retrieved: (await client.models.retrieve("house-model")).id };

try {
  await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "node fail" }] });
  out.error = null;
} catch (err) {
  out.error = { status: err.status, name: err.constructor.name, message: err.error?.message };
}

console.log(JSON.stringify(out));
