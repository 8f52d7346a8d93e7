// A Mastra agent with one tool, calling the local SLM through `slm-swap serve` (OpenAI-compatible).
//
//   slm-swap serve --port 8000            (in another terminal)
//   npm start                             (or: SLM_SWAP_URL=... SLM_SWAP_MODEL=... npm start)
//
// The agent's first step must call the tool (tool_choice "required", which the server honours by
// grammar-constrained decoding); its second step gets the tool's result and answers in words.
// It prints one JSON line: the tool calls, the tool results, and the final answer.
import { Agent } from "@mastra/core/agent";
import { createTool } from "@mastra/core/tools";
import { z } from "zod";

const url = process.env.SLM_SWAP_URL ?? "http://127.0.0.1:8000/v1";
const model = process.env.SLM_SWAP_MODEL ?? "SmolLM2-135M-Instruct";
const apiKey = process.env.SLM_SWAP_API_KEY ?? "not-needed";
const question = process.argv[2] ?? "What is the weather in Paris right now?";

const getWeather = createTool({
  id: "get_weather",
  description: "Current weather in a city.",
  inputSchema: z.object({ city: z.string().describe("The city, e.g. Paris") }),
  execute: async ({ city }) => ({ city, temperature_c: 21, sky: "sunny" }),
});

const agent = new Agent({
  id: "weather-agent",
  name: "Weather agent",
  instructions: "You answer questions about the weather. Use the tool, then answer in one sentence.",
  model: { id: `slm/${model}`, url, apiKey },
  tools: { get_weather: getWeather },
});

const result = await agent.generate(question, {
  maxSteps: 2,
  modelSettings: { maxOutputTokens: 96 },
  prepareStep: ({ stepNumber }) => ({ toolChoice: stepNumber === 0 ? "required" : "none" }),
});

const toolCalls = result.steps.flatMap((s) => s.toolCalls ?? []).map((c) => c.payload ?? c);
const toolResults = result.steps.flatMap((s) => s.toolResults ?? []).map((r) => r.payload ?? r);
console.log(
  JSON.stringify({
    toolCalls: toolCalls.map((c) => ({ name: c.toolName, args: c.args ?? c.input })),
    toolResults: toolResults.map((r) => ({ name: r.toolName, result: r.result ?? r.output })),
    steps: result.steps.length,
    answer: result.text,
  }),
);
