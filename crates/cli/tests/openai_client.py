"""The official `openai` Python client against `duet serve` (run by tests/cli.rs).

Usage: python openai_client.py BASE_URL API_KEY GENERATOR EMBEDDER
Every check asserts; the script exits non-zero on the first failure.
"""

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
