"""The official `openai` Python client against `duet serve` (run by tests/cli.rs).

Usage: python openai_client.py BASE_URL API_KEY GENERATOR EMBEDDER
Every check asserts; the script exits non-zero on the first failure.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request

import jsonschema
import openai

base_url, key, gen, emb = sys.argv[1:5]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)

# Models.
ids = sorted(m.id for m in client.models.list())
assert gen in ids and emb in ids, ids
assert client.models.retrieve(gen).id == gen

# Chat.
r = client.chat.completions.create(
    model=gen,
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the cat"}],
    max_tokens=5,
    temperature=0,
)
assert r.object == "chat.completion", r
assert r.choices[0].message.role == "assistant"
assert isinstance(r.choices[0].message.content, str)
assert r.choices[0].finish_reason in ("stop", "length")
assert r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

# Chat, streamed, with usage; the pieces add up to the non-streamed answer (greedy).
stream = client.chat.completions.create(
    model=gen,
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the cat"}],
    max_tokens=5,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
assert finish == r.choices[0].finish_reason

# Sampling parameters, seeded: the same seed gives the same choices.
kw = dict(model=gen, messages=[{"role": "user", "content": "a dog"}], max_tokens=6,
          temperature=0.9, top_p=0.95, n=2, seed=11, presence_penalty=0.5,
          frequency_penalty=0.5, stop=["\n\n"], logprobs=True, top_logprobs=2,
          extra_body={"top_k": 40, "min_p": 0.01, "repetition_penalty": 1.1})
a = client.chat.completions.create(**kw)
b = client.chat.completions.create(**kw)
assert len(a.choices) == 2
assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
lp = a.choices[0].logprobs.content
assert lp and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in lp), lp

# Completions.
c = client.completions.create(model=gen, prompt="the cat", max_tokens=4, temperature=0, echo=True)
assert c.object == "text_completion"
assert c.choices[0].text.startswith("the cat"), c.choices[0].text
assert c.usage.completion_tokens <= 4
pieces = list(client.completions.create(model=gen, prompt="the cat", max_tokens=4, temperature=0, stream=True))
assert "".join(p.choices[0].text for p in pieces if p.choices) == c.choices[0].text[len("the cat"):]

# Embeddings: the client asks for base64 by default and decodes it; floats too.
e = client.embeddings.create(model=emb, input=["the cat sat", "a dog"])
assert len(e.data) == 2 and len(e.data[0].embedding) > 0
assert e.usage.prompt_tokens > 0
f = client.embeddings.create(model=emb, input="the cat sat", encoding_format="float")
assert all(abs(x - y) < 1e-6 for x, y in zip(f.data[0].embedding, e.data[0].embedding))

# Structured output: the answer parses and validates against the schema.
schema = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["ok", "n"],
    "additionalProperties": False,
}
for seed in range(3):
    r = client.chat.completions.create(
        model=gen, messages=[{"role": "user", "content": "x"}], max_tokens=40, seed=seed,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}},
    )
    assert r.choices[0].finish_reason == "stop", r
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
r = client.chat.completions.create(
    model=gen, messages=[{"role": "user", "content": "x"}], max_tokens=40,
    response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    stream=True,
)
streamed = "".join(c.choices[0].delta.content or "" for c in r if c.choices)
jsonschema.validate(json.loads(streamed), schema)
try:
    client.chat.completions.create(
        model=gen, messages=[{"role": "user", "content": "x"}], max_tokens=5,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "bogus"}}},
    )
    raise AssertionError("a broken schema was accepted")
except openai.BadRequestError as err:
    assert err.status_code == 400 and err.body["param"] == "response_format", err.body

# Sampling without a seed: two draws differ (a fixed default seed would repeat itself).
kw = dict(model=gen, messages=[{"role": "user", "content": "a dog"}], max_tokens=12, temperature=1.0)
assert client.chat.completions.create(**kw).choices[0].message.content != \
    client.chat.completions.create(**kw).choices[0].message.content

# Tool calling: forced calls parse and validate against the function's schema, whole and
# streamed; the call and its result go back into the conversation.
weather = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
           "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"],
           "additionalProperties": False}
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": weather}}]
for seed in range(5):
    r = client.chat.completions.create(
        model=gen, messages=[{"role": "user", "content": "the cat"}], tools=tools,
        tool_choice="required", parallel_tool_calls=False, seed=seed, max_tokens=150)
    assert r.choices[0].finish_reason == "tool_calls", r
    call = r.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", r
    jsonschema.validate(json.loads(call.function.arguments), weather)
stream = client.chat.completions.create(
    model=gen, messages=[{"role": "user", "content": "the cat"}], tools=tools, seed=3,
    tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=150,
    stream=True)
args, name, finish = "", None, None
for chunk in stream:
    for c in chunk.choices:
        for d in c.delta.tool_calls or []:
            name = d.function.name or name
            args += d.function.arguments or ""
        finish = c.finish_reason or finish
assert name == "get_weather" and finish == "tool_calls", (name, finish)
jsonschema.validate(json.loads(args), weather)
r = client.chat.completions.create(
    model=gen, max_tokens=4, tools=tools, messages=[
        {"role": "user", "content": "the cat"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function",
         "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 C"}])
assert r.choices[0].message.role == "assistant", r

# The Responses API: text in, a message out; streamed as named events.
resp = client.responses.create(model=gen, input="the cat", max_output_tokens=5, temperature=0)
assert resp.object == "response" and isinstance(resp.output_text, str), resp
assert resp.usage.output_tokens == 5, resp.usage
kinds = [e.type for e in client.responses.create(model=gen, input="the cat", max_output_tokens=5,
                                                 temperature=0, stream=True)]
assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
assert "response.output_text.delta" in kinds, kinds
resp = client.responses.create(model=gen, input="the cat", max_output_tokens=150, tool_choice="required",
                               tools=[{"type": "function", "name": "get_weather", "parameters": weather}])
assert resp.output[0].type == "function_call", resp
jsonschema.validate(json.loads(resp.output[0].arguments), weather)

# Prompt scoring: echo with logprobs and max_tokens 0 (lm-evaluation-harness's log-likelihood).
c = client.completions.create(model=gen, prompt="the cat sat", max_tokens=0, echo=True, logprobs=1)
lps = c.choices[0].logprobs.token_logprobs
assert c.choices[0].text == "the cat sat" and lps[0] is None and all(x <= 0 for x in lps[1:]), c
try:
    client.embeddings.create(model=emb, input=[[100000, 5]])
    raise AssertionError("a token id outside the vocabulary was accepted")
except openai.BadRequestError as err:
    assert err.body["param"] == "input[0]", err.body

# The async client.
async def chat_async():
    aclient = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    r = await aclient.chat.completions.create(
        model=gen, messages=[{"role": "user", "content": "the cat"}], max_tokens=3, temperature=0)
    return r.choices[0].message.content
assert isinstance(asyncio.run(chat_async()), str)

# Errors.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as err:
    assert err.status_code == 404 and err.body["code"] == "model_not_found", err.body
try:
    client.chat.completions.create(model=gen, messages=[{"role": "user", "content": "x"}], temperature=7)
    raise AssertionError("temperature 7 accepted")
except openai.BadRequestError as err:
    assert err.status_code == 400 and err.body["param"] == "temperature", err.body
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as err:
    assert err.status_code == 401
# A request with no key at all (the client always sends one, so plain urllib).
req = urllib.request.Request(base_url + "/models")
try:
    urllib.request.urlopen(req, timeout=30)
    raise AssertionError("a request without a key was accepted")
except urllib.error.HTTPError as err:
    assert err.code == 401, err.code
    assert json.loads(err.read())["error"]["code"] == "invalid_api_key"
print("openai client: all checks passed")
